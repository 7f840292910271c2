"""The analyst's report: one self-contained HTML file with inline images (opens from disk)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from crm_engine.stage_reports import ChurnReport, ValuationReport

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1150px;color:#1d2733;line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #e3e8ee;padding-bottom:.3rem;margin-top:2.2rem}
.sub{color:#5b6b7c;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{background:#f4f7fa;border-radius:8px;padding:.7rem 1rem;min-width:150px}
.card b{display:block;font-size:1.45rem}
.card span{color:#5b6b7c;font-size:.85rem}
table{border-collapse:collapse;font-size:.86rem;margin:.6rem 0}
th,td{border-bottom:1px solid #e3e8ee;padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#f4f7fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1rem}
figure{margin:0}figure img{max-width:100%;height:auto;border:1px solid #eef1f4;border-radius:6px}
figcaption{color:#5b6b7c;font-size:.85rem}
.warn{color:#8a5a00}.muted{color:#8a97a6}
.tablewrap{overflow-x:auto;max-width:100%}td{min-width:3.5rem;max-width:22rem}
"""


@dataclass
class ReportInputs:
    """Everything the report shows; stage reports are optional (a skipped stage says so)."""

    scores: pl.DataFrame
    as_of: dt.date
    run_id: str
    segment_profiles: pl.DataFrame | None = None
    migration: pl.DataFrame | None = None
    valuation: ValuationReport | None = None
    churn: ChurnReport | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)
    images: dict[str, Path] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    customer_rows: bool = True
    """False leaves out the per-customer "save first" table (the copy logged to MLflow)."""


def _fig_to_img(fig: Any, alt: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _png_file_to_img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _figure(img: str, caption: str) -> str:
    return f"<figure>{img}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(v: Any) -> str:
    if v is None:
        return '<span class="muted">–</span>'
    if isinstance(v, float):
        if np.isnan(v):
            return '<span class="muted">–</span>'
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, list):
        return html.escape(", ".join(str(x) for x in v))
    return html.escape(str(v))


def _table(df: pl.DataFrame, max_rows: int = 50) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    rows = []
    for row in df.head(max_rows).iter_rows():
        cells = "".join(
            f'<td class="n">{_fmt(v)}</td>' if isinstance(v, int | float) else f"<td>{_fmt(v)}</td>"
            for v in row
        )
        rows.append(f"<tr>{cells}</tr>")
    return (
        f"<div class='tablewrap'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


_ORDER = {
    "spend_level": ["high", "medium", "low"],
    "age_band": ["<25", "25-34", "35-49", "50-64", "65+", "unknown"],
    "area_type": ["urban", "rural", "unknown"],
}


def _ordered(column: str, values: list[str]) -> list[str]:
    known = _ORDER.get(column, [])
    return [v for v in known if v in values] + sorted(v for v in values if v not in known)


def _heatmap(scores: pl.DataFrame, rows: str, cols: str, title: str) -> str | None:
    if scores[rows].null_count() == scores.height or scores[cols].null_count() == scores.height:
        return None
    counts = (
        scores.group_by(rows, cols)
        .agg(pl.len().alias("n"))
        .pivot(on=cols, index=rows, values="n")
        .fill_null(0)
    )
    row_names = _ordered(rows, [str(v) for v in counts[rows]])
    counts = (
        counts.with_columns(pl.col(rows).cast(pl.String))
        .join(pl.DataFrame({rows: row_names}), on=rows, how="right")
        .select(rows, pl.exclude(rows))
    )
    col_names = _ordered(cols, [c for c in counts.columns if c != rows])
    mat = counts.select(col_names).fill_null(0).to_numpy().astype(float)
    lo, hi = float(mat.min()), float(mat.max())
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 3.6))
    im = ax.imshow(mat, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(col_names)), col_names, rotation=30, ha="right")
    ax.set_yticks(range(counts.height), [str(x) for x in counts[rows]])
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            ax.text(
                j,
                i,
                f"{int(mat[i, j]):,}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if mat[i, j] > lo + 0.6 * (hi - lo) else "black",
            )
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="customers")
    return _fig_to_img(fig, title)


def _bar(labels: list[str], values: list[float], title: str, xlabel: str, color: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    ax.barh(labels[::-1], values[::-1], color=color)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return _fig_to_img(fig, title)


def _hist(values: np.ndarray, title: str, xlabel: str, log: bool = False) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    v = values[np.isfinite(values)]
    if log:
        v = np.log10(np.clip(v, 1e-2, None))
        xlabel = f"log10({xlabel})"
    ax.hist(v, bins=50, color="#4c78a8")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("customers")
    return _fig_to_img(fig, title)


def _has(scores: pl.DataFrame, col: str) -> bool:
    return col in scores.columns and scores[col].null_count() < scores.height


def _headline(inp: ReportInputs) -> str:
    s = inp.scores
    cards = [("customers scored", f"{s.height:,}")]
    if _has(s, "segment_id"):
        cards.append(("segments", f"{s['segment_id'].n_unique()}"))
    if _has(s, "clv"):
        cards.append(("total CLV", f"{s['clv'].sum():,.0f}"))
        cards.append(("median CLV", f"{s['clv'].median():,.1f}"))
    if _has(s, "churn_risk_band"):
        cards.append(("high churn risk", f"{(s['churn_risk_band'] == 'high').sum():,}"))
    if _has(s, "churn_probability"):
        cards.append(("expected churners", f"{s['churn_probability'].sum():,.0f}"))
    if _has(s, "value_at_risk"):
        cards.append(("value at risk", f"{s['value_at_risk'].sum():,.0f}"))
    if _has(s, "loyalty_score"):
        cards.append(("mean promoter probability", f"{s['loyalty_score'].mean():.0%}"))
    body = "".join(
        f"<div class='card'><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>"
        for k, v in cards
    )
    return f"<div class='cards'>{body}</div>"


def _segments(inp: ReportInputs) -> str:
    s = inp.scores
    parts = ["<h2>Who our customers are</h2>"]
    if inp.segment_profiles is not None and inp.segment_profiles.height:
        parts.append("<h3>Behavioural segments</h3>")
        parts.append(_table(inp.segment_profiles))
    else:
        parts.append("<p class='muted'>Segmentation stage not run.</p>")
    grid = []
    if _has(s, "spend_level") and _has(s, "age_band"):
        img = _heatmap(s, "spend_level", "age_band", "Customers by spend level and age band")
        if img:
            grid.append(_figure(img, "Spend level x age band (customer counts)"))
    if _has(s, "region") and _has(s, "area_type"):
        img = _heatmap(s, "region", "area_type", "Customers by region and area")
        if img:
            grid.append(_figure(img, "Region x area (customer counts)"))
    if grid:
        parts.append(f"<div class='grid'>{''.join(grid)}</div>")
    if inp.migration is not None and inp.migration.height:
        parts.append("<h3>Segment migration since the previous run</h3>")
        parts.append(_table(inp.migration))
    return "".join(parts)


def _value(inp: ReportInputs) -> str:
    s = inp.scores
    parts = ["<h2>What they are worth</h2>"]
    if not _has(s, "clv"):
        return parts[0] + "<p class='muted'>Valuation stage not run.</p>"
    grid = [
        _figure(
            _hist(s["clv"].to_numpy(), "CLV distribution", "CLV", log=True),
            "Customer lifetime value over the horizon (discounted margin), log scale",
        )
    ]
    if _has(s, "value_tier"):
        order = ["platinum", "gold", "silver", "bronze"]
        tiers = s.group_by("value_tier").agg(pl.len().alias("n"), pl.col("clv").sum().alias("clv"))
        tiers = tiers.with_columns(
            pl.col("value_tier")
            .replace_strict({t: i for i, t in enumerate(order)}, default=9)
            .alias("o")
        ).sort("o")
        grid.append(
            _figure(
                _bar(
                    tiers["value_tier"].to_list(),
                    tiers["clv"].to_list(),
                    "Total CLV by value tier",
                    "CLV",
                    "#b279a2",
                ),
                "Value tiers: "
                + ", ".join(
                    f"{t} {n:,}" for t, n in zip(tiers["value_tier"], tiers["n"], strict=True)
                )
                + " customers",
            )
        )
    if _has(s, "lifecycle_stage"):
        life = s.group_by("lifecycle_stage").agg(pl.len().alias("n")).sort("n", descending=True)
        grid.append(
            _figure(
                _bar(
                    life["lifecycle_stage"].to_list(),
                    life["n"].to_list(),
                    "Lifecycle stages",
                    "customers",
                    "#72b7b2",
                ),
                "Customers per lifecycle stage",
            )
        )
    holdout = inp.images.get("valuation_holdout.png")
    if holdout is not None and Path(holdout).is_file():
        grid.append(
            _figure(
                _png_file_to_img(holdout, "CLV holdout"),
                "Holdout: predicted vs actual cumulative repeat purchases",
            )
        )
    parts.append(f"<div class='grid'>{''.join(grid)}</div>")
    if inp.valuation:
        parts.append("<h3>How the value is modelled</h3>" + _table(_valuation_facts(inp.valuation)))
    return "".join(parts)


def _sig(v: Any, digits: int = 4) -> str:
    return f"{float(v):.{digits}g}" if isinstance(v, int | float) else str(v)


def _valuation_facts(v: ValuationReport) -> pl.DataFrame:
    """The valuation summary in an analyst's words: model, what its parameters mean, spend."""
    facts: list[tuple[str, str]] = [
        (
            "purchase model",
            f"{v.model} ("
            + ", ".join(f"{k}={_sig(x)}" for k, x in v.params.items())
            + "; time in days)",
        )
    ]
    rates = v.population_rates_per_day
    if rates.get("purchase_rate"):
        facts.append(
            ("typical active customer buys", f"every {1 / rates['purchase_rate']:.0f} days")
        )
    if "dropout" in rates:
        facts.append(("chance of leaving after a purchase", f"{rates['dropout']:.2%}"))
    facts.append(("mean P(alive) at as_of", f"{v.mean_p_alive:.1%}"))
    facts.append(("mean spend per purchase (population)", _sig(v.spend.population_mean)))
    corr = v.spend.frequency_monetary_corr
    if corr is not None:
        verdict = "independent enough" if abs(corr) <= 0.3 else "check the spend model"
        facts.append(("frequency-spend correlation", f"{corr:+.2f} ({verdict})"))
    facts += [
        ("CLV horizon (days)", _sig(v.horizon_days)),
        ("margin", _sig(v.margin)),
        ("annual discount rate", _sig(v.annual_discount_rate)),
    ]
    return pl.DataFrame({"fact": [f for f, _ in facts], "value": [x for _, x in facts]})


def _churn(inp: ReportInputs) -> str:
    s = inp.scores
    parts = ["<h2>Who is about to leave, and why</h2>"]
    if not _has(s, "churn_probability"):
        return parts[0] + "<p class='muted'>Churn stage not run.</p>"
    grid = [
        _figure(
            _hist(s["churn_probability"].to_numpy(), "Churn probability", "probability"),
            "Calibrated churn probability over the horizon",
        )
    ]
    churn_metrics = inp.churn.churn_metrics() if inp.churn is not None else {}
    for key, caption in (
        ("churn_lift", "Lift and capture by risk decile, out of time"),
        ("churn_reliability", "Reliability curve: predicted vs observed churn, out of time"),
        ("churn_importance", "Top churn drivers overall (mean |contribution|)"),
    ):
        path = inp.images.get(key)
        if path is not None and Path(path).is_file():
            grid.append(_figure(_png_file_to_img(path, key), caption))
    if _has(s, "value_at_risk") and _has(s, "segment_name"):
        var = (
            s.group_by("segment_name")
            .agg(pl.col("value_at_risk").sum().alias("v"))
            .sort("v", descending=True)
        )
        grid.append(
            _figure(
                _bar(
                    var["segment_name"].to_list(),
                    var["v"].to_list(),
                    "Value at risk by segment",
                    "sum of churn probability x CLV",
                    "#54a24b",
                ),
                "Where retention money matters most",
            )
        )
    parts.append(f"<div class='grid'>{''.join(grid)}</div>")
    metrics = {
        k: v
        for k, v in churn_metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    if metrics:
        parts.append(
            _table(
                pl.DataFrame(
                    {"metric": list(metrics), "value": [float(v) for v in metrics.values()]}
                )
            )
        )
    if _has(s, "value_at_risk") and inp.customer_rows:
        top = (
            s.filter(pl.col("value_at_risk").is_not_null())
            .sort("value_at_risk", descending=True)
            .head(15)
        )
        cols = [
            c
            for c in (
                "customer_id",
                "segment_name",
                "clv",
                "churn_probability",
                "value_at_risk",
                "churn_drivers",
            )
            if c in top.columns
        ]
        top = top.select(cols)
        if "churn_drivers" in top.columns:
            top = top.with_columns(
                pl.col("churn_drivers")
                .list.eval(pl.element().struct.field("feature"))
                .list.join(", ")
                .alias("churn_drivers")
            )
        parts.append("<h3>Save first: highest value at risk</h3>" + _table(top))
    return "".join(parts)


def _quality(inp: ReportInputs) -> str:
    parts = ["<h2>Data quality</h2>"]
    if not inp.warnings:
        return parts[0] + "<p>No validation warnings.</p>"
    parts.append(
        _table(
            pl.DataFrame(
                {
                    "table": [str(w.get("table")) for w in inp.warnings],
                    "column": [str(w.get("column")) for w in inp.warnings],
                    "rows": [int(w.get("rows") or 0) for w in inp.warnings],
                    "warning": [str(w.get("message")) for w in inp.warnings],
                }
            )
        )
    )
    return "".join(parts)


def render_report(inp: ReportInputs) -> str:
    """The whole report as one HTML string."""
    tracking = ""
    if inp.mlflow_run_id:
        tracking = (
            f" · MLflow run <code>{html.escape(inp.mlflow_run_id)}</code>"
            f" in <code>{html.escape(inp.tracking_uri or '')}</code>"
        )
    body = "".join(
        [
            "<h1>Customer base report</h1>",
            f"<p class='sub'>As of {inp.as_of.isoformat()} · run <code>{html.escape(inp.run_id)}"
            f"</code>{tracking}</p>",
            _headline(inp),
            _segments(inp),
            _value(inp),
            _churn(inp),
            _quality(inp),
        ]
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>crm-engine report {inp.as_of.isoformat()}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>"
    )


def write_report(inp: ReportInputs, path: Path) -> Path:
    """Render and write ``report.html``."""
    path = Path(path)
    path.write_text(render_report(inp), encoding="utf-8")
    return path
