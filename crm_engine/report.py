"""The analyst's report: one self-contained HTML file with inline images (opens from disk)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from crm_engine.stage_reports import ChurnReport, PopulationReport, ValuationReport

__all__ = [
    "SAVE_FIRST_COLUMNS",
    "SAVE_FIRST_FILE",
    "SAVE_FIRST_ROWS",
    "ReportInputs",
    "lifecycle_funnel",
    "loyalty_split",
    "render_report",
    "save_first",
    "value_risk_matrix",
    "write_report",
]

SAVE_FIRST_FILE = "save_first.csv"
SAVE_FIRST_ROWS = 100
"""Default length of the save-first list (``output.save_first_rows``)."""
SAVE_FIRST_COLUMNS = (
    "customer_id",
    "segment_name",
    "value_tier",
    "lifecycle_stage",
    "plan_type",
    "region",
    "clv",
    "churn_probability",
    "value_at_risk",
    "retention_profit",
)
"""Columns of ``save_first.csv`` before the reasons (all ``crm.scores/v1`` columns)."""
NOT_TO_SAVE_STAGES = ("dormant", "lost")
"""Lifecycle stages left out of the save-first list: a win-back campaign, not a retention call."""
NOT_TO_SAVE_BANDS = ("lost",)
"""Churn risk bands left out of the save-first list."""

TIER_ORDER = ("platinum", "gold", "silver", "bronze")
RISK_ORDER = ("high", "medium", "low", "lost")
STAGE_ORDER = ("new", "active", "at_risk", "dormant", "lost")
LOYALTY_ORDER = ("promoter", "passive", "detractor")
UNKNOWN = "unknown"
ALL_CUSTOMERS = "All customers"

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1150px;color:#1d2733;line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #e3e8ee;padding-bottom:.3rem;margin-top:2.4rem}
h3{margin-top:1.6rem}
.sub{color:#5b6b7c;margin-top:0}.population{margin:.2rem 0 1rem}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{background:#f4f7fa;border-radius:8px;padding:.7rem 1rem;min-width:150px}
.card b{display:block;font-size:1.45rem}
.card span{color:#5b6b7c;font-size:.85rem}
table{border-collapse:collapse;font-size:.86rem;margin:.6rem 0}
th,td{border-bottom:1px solid #e3e8ee;padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#f4f7fa}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td{min-width:3.5rem;max-width:22rem;overflow-wrap:break-word}
.tablewrap{overflow-x:auto;max-width:100%}
table.matrix td{text-align:right;min-width:7.5rem;font-variant-numeric:tabular-nums}
table.matrix td b{display:block;font-size:1rem}table.matrix td span{color:#3d4b59;font-size:.8rem}
table.matrix th[scope=row]{white-space:nowrap}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(480px,100%),1fr));gap:1rem}
figure{margin:0}figure img{max-width:100%;height:auto;border:1px solid #eef1f4;border-radius:6px}
figcaption{color:#5b6b7c;font-size:.85rem}
caption{text-align:left;padding:.2rem 0}
.segcards{margin-bottom:1.2rem;display:grid;grid-template-columns:repeat(auto-fill,minmax(min(260px,100%),1fr));
gap:.8rem}
.seg{background:#f4f7fa;border-radius:8px;padding:.7rem 1rem}
.seg h3{margin:.1rem 0 .2rem;font-size:1.02rem}.seg p{margin:.2rem 0;font-size:.86rem}
.seg dl{display:grid;grid-template-columns:auto auto;gap:.1rem .8rem;margin:.4rem 0;
font-size:.86rem}.seg dt{color:#5b6b7c}.seg dd{margin:0;text-align:right}
.warn{color:#8a5a00}.muted{color:#8a97a6}
a.download{font-weight:600}
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
    population: PopulationReport | None = None
    """Customers in the input and why some are not scored (the profile stage's report)."""
    currency: str | None = None
    """``output.currency``: shown in every money title; None shows "units"."""
    save_first_file: str | None = None
    """Name of the save-first CSV written beside the report (linked when ``customer_rows``)."""
    save_first_rows: int = SAVE_FIRST_ROWS
    """How many customers that CSV lists."""


# --- the views, as frames (what the tests check) ---------------------------------------------


def _ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    """``values`` in ``order``, then the others sorted, ``unknown`` last."""
    present = set(values)
    known = [v for v in order if v in present and v != UNKNOWN]
    rest = sorted(v for v in present if v not in order and v != UNKNOWN)
    return known + rest + ([UNKNOWN] if UNKNOWN in present else [])


def _rank(column: str, order: Sequence[str]) -> pl.Expr:
    """Sort key of a text column: its place in ``order``, others after, ``unknown`` last."""
    return (
        pl.when(pl.col(column) == UNKNOWN)
        .then(len(order) + 1)
        .otherwise(
            pl.col(column).replace_strict(
                {v: i for i, v in enumerate(order)}, default=len(order), return_dtype=pl.Int64
            )
        )
    )


def value_risk_matrix(scores: pl.DataFrame) -> pl.DataFrame:
    """Customers and value at risk in each value tier x churn risk band cell.

    Every pair of the tiers and bands present is a row (empty cells hold zeros), tiers and bands
    in their natural order; a missing tier or band is ``unknown``. The cells add up to every
    scored customer and to the total value at risk.

    Returns
    -------
    polars.DataFrame
        ``value_tier``, ``churn_risk_band``, ``customers`` (Int64), ``value_at_risk`` (Float64).
    """
    df = scores.select(
        pl.col("value_tier").fill_null(UNKNOWN),
        pl.col("churn_risk_band").fill_null(UNKNOWN),
        pl.col("value_at_risk").cast(pl.Float64),
    )
    cells = df.group_by("value_tier", "churn_risk_band").agg(
        pl.len().cast(pl.Int64).alias("customers"),
        pl.col("value_at_risk").sum().alias("value_at_risk"),
    )
    tiers = _ordered(df["value_tier"].to_list(), TIER_ORDER)
    bands = _ordered(df["churn_risk_band"].to_list(), RISK_ORDER)
    grid = pl.DataFrame({"value_tier": tiers}).join(
        pl.DataFrame({"churn_risk_band": bands}), how="cross"
    )
    return (
        grid.join(cells, on=["value_tier", "churn_risk_band"], how="left")
        .with_columns(pl.col("customers").fill_null(0), pl.col("value_at_risk").fill_null(0.0))
        .sort(_rank("value_tier", TIER_ORDER), _rank("churn_risk_band", RISK_ORDER))
    )


def lifecycle_funnel(scores: pl.DataFrame) -> pl.DataFrame:
    """Customers, share, CLV and value at risk per lifecycle stage, new -> ... -> dormant (lost).

    Returns
    -------
    polars.DataFrame
        ``lifecycle_stage``, ``customers`` (Int64), ``share``, ``clv``, ``value_at_risk``.
    """
    return (
        scores.select(
            pl.col("lifecycle_stage").fill_null(UNKNOWN),
            pl.col("clv").cast(pl.Float64),
            pl.col("value_at_risk").cast(pl.Float64),
        )
        .group_by("lifecycle_stage")
        .agg(
            pl.len().cast(pl.Int64).alias("customers"),
            pl.col("clv").sum(),
            pl.col("value_at_risk").sum(),
        )
        .with_columns((pl.col("customers") / pl.col("customers").sum()).alias("share"))
        .sort(_rank("lifecycle_stage", STAGE_ORDER))
        .select("lifecycle_stage", "customers", "share", "clv", "value_at_risk")
    )


def loyalty_split(scores: pl.DataFrame, by: str | None = None) -> pl.DataFrame:
    """Share of promoters, passives and detractors (predicted class), overall or per ``by``.

    Customers without a loyalty class are left out. ``net`` is promoters minus detractors in
    points, as the net promoter score is read.

    Returns
    -------
    polars.DataFrame
        ``group`` (``All customers`` or the ``by`` value), ``customers``, ``promoter``,
        ``passive``, ``detractor`` (shares), ``net``; groups by customers, largest first.
    """
    df = scores.filter(pl.col("loyalty_class").is_not_null())
    key = pl.lit(ALL_CUSTOMERS) if by is None else pl.col(by).cast(pl.String).fill_null(UNKNOWN)
    df = df.select(key.alias("group"), "loyalty_class")
    shares = [(pl.col("loyalty_class") == c).mean().alias(c) for c in LOYALTY_ORDER]
    return (
        df.group_by("group")
        .agg(pl.len().cast(pl.Int64).alias("customers"), *shares)
        .with_columns(((pl.col("promoter") - pl.col("detractor")) * 100).alias("net"))
        .sort(["customers", "group"], descending=[True, False])
    )


def save_first(scores: pl.DataFrame, n: int = SAVE_FIRST_ROWS) -> pl.DataFrame:
    """The customers to call first, with their reasons.

    With ``retention_profit`` (the churn stage's expected profit of an offer): the ``n`` most
    profitable to contact among those worth it (profit > 0, ``churn_risk_band`` high under
    the profit bands); without it, the ``n`` highest values at risk. Dormant and lost customers
    (lifecycle stage or churn risk band) are left out. Every column is a ``crm.scores/v1``
    column: :data:`SAVE_FIRST_COLUMNS`, then ``churn_reasons`` joined with ``"; "``. Ties go
    by ``customer_id``.
    """
    cols = [c for c in SAVE_FIRST_COLUMNS if c in scores.columns]
    by = save_first_rank(scores)
    keep = pl.col(by).is_not_null()
    if by == "retention_profit":
        keep &= pl.col(by) > 0
    if "lifecycle_stage" in scores.columns:
        keep &= ~pl.col("lifecycle_stage").is_in(NOT_TO_SAVE_STAGES).fill_null(False)
    if "churn_risk_band" in scores.columns:
        keep &= ~pl.col("churn_risk_band").is_in(NOT_TO_SAVE_BANDS).fill_null(False)
    top = scores.filter(keep).sort([by, "customer_id"], descending=[True, False]).head(n)
    digits = {"clv": 2, "value_at_risk": 2, "retention_profit": 2, "churn_probability": 4}
    exprs = [pl.col(c).round(digits[c]) if c in digits else pl.col(c) for c in cols]
    if "churn_reasons" in scores.columns:
        exprs.append(pl.col("churn_reasons").list.join("; ").alias("churn_reasons"))
    return top.select(exprs)


def save_first_rank(scores: pl.DataFrame) -> str:
    """The column the save-first list ranks by: ``retention_profit`` when the run has it."""
    if "retention_profit" in scores.columns and scores["retention_profit"].null_count() < (
        scores.height
    ):
        return "retention_profit"
    return "value_at_risk"


# --- formatting ------------------------------------------------------------------------------

_LABELS = {
    "at_risk": "at risk",
    "high": "high risk",
    "medium": "medium risk",
    "low": "low risk",
    "lost": "lost",
}


def _label(value: Any) -> str:
    """A category value as an analyst reads it (``at_risk`` -> ``at risk``)."""
    text = str(value)
    return _LABELS.get(text, text.replace("_", " "))


def _title_case(text: str) -> str:
    return text[:1].upper() + text[1:]


_COLUMNS: dict[str, tuple[str, str]] = {
    # name: (title, kind); {cur} is the currency
    "customer_id": ("Customer", "id"),
    "segment_id": ("Segment id", "id"),
    "segment_name": ("Segment", "text"),
    "previous_segment_id": ("Previous segment id", "id"),
    "previous_segment_name": ("Previous segment", "text"),
    "value_tier": ("Value tier", "label"),
    "lifecycle_stage": ("Lifecycle stage", "label"),
    "churn_risk_band": ("Churn risk", "label"),
    "plan_type": ("Plan", "label"),
    "region": ("Region", "text"),
    "clv": ("CLV ({cur})", "money"),
    "churn_probability": ("Churn probability", "pct"),
    "value_at_risk": ("Value at risk ({cur})", "money"),
    "network_value": ("Network value ({cur})", "money"),
    "value_at_risk_network": ("Value at risk through contacts ({cur})", "money"),
    "total_at_risk": ("Own + through contacts ({cur})", "money"),
    "model": ("Model", "text"),
    "mean_predicted": ("Predicted revenue per customer ({cur})", "money"),
    "mean_actual": ("Real revenue per customer ({cur})", "money"),
    "mae": ("Mean absolute error per customer ({cur})", "money"),
    "relative": ("Error / real revenue", "pct"),
    "churn_reasons": ("Why they may leave", "text"),
    "churn_drivers": ("Top churn drivers (model features)", "text"),
    "customers": ("Customers", "count"),
    "size": ("Customers", "count"),
    "share": ("Share of customers", "pct"),
    "share_of_previous": ("Share of the previous segment", "pct"),
    "group": ("Segment", "text"),
    "promoter": ("Promoters", "pct"),
    "passive": ("Passives", "pct"),
    "detractor": ("Detractors", "pct"),
    "net": ("Net promoters (points)", "points"),
    "table": ("Table", "text"),
    "column": ("Column", "text"),
    "rows": ("Rows", "count"),
    "warning": ("Warning", "text"),
    "fact": ("", "text"),
    "value": ("", "text"),
}


def _dash() -> str:
    return '<span class="muted">–</span>'


def _fmt(v: Any, kind: str = "auto") -> str:
    """One cell: money without decimals above 100, probabilities and shares in %."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return _dash()
    if kind == "id":
        return html.escape(str(v))
    if kind == "label":
        return html.escape(_label(v))
    if kind == "pct" and isinstance(v, int | float):
        return f"{float(v):.1%}"
    if kind == "money" and isinstance(v, int | float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}"
    if kind == "points" and isinstance(v, int | float):
        return f"{v:+.0f}"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, list):
        return html.escape(", ".join(str(x) for x in v))
    return html.escape(str(v))


def _column(name: str, cur: str) -> tuple[str, str]:
    title, kind = _COLUMNS.get(name, (_title_case(name.replace("_", " ")), "auto"))
    return title.format(cur=cur), kind


def _table(
    df: pl.DataFrame,
    cur: str,
    max_rows: int = 50,
    titles: dict[str, str] | None = None,
    more: str | None = None,
) -> str:
    """A table with readable titles (units in them) and formatted numbers.

    ``more`` replaces the note under a table cut at ``max_rows``.
    """
    specs = [_column(c, cur) for c in df.columns]
    if titles:
        specs = [(titles.get(c, t), k) for c, (t, k) in zip(df.columns, specs, strict=True)]
    numeric = [
        dtype.is_numeric() and kind != "id"
        for dtype, (_, kind) in zip(df.dtypes, specs, strict=True)
    ]
    head = "".join(
        f"<th{' class=n' if num else ''}>{html.escape(t)}</th>"
        for (t, _), num in zip(specs, numeric, strict=True)
    )
    rows = []
    for row in df.head(max_rows).iter_rows():
        cells = "".join(
            f"<td{' class=n' if num else ''}>{_fmt(v, kind)}</td>"
            for v, (_, kind), num in zip(row, specs, numeric, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    note = ""
    if df.height > max_rows:
        note = f"<p class='muted'>{more or f'First {max_rows:,} of {df.height:,} rows.'}</p>"
    return (
        f"<div class='tablewrap'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>{note}"
    )


def _facts(rows: list[tuple[str, str]]) -> str:
    """Two-column table of already formatted facts (label, value)."""
    body = "".join(
        f"<tr><th scope='row'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
    )
    return f"<div class='tablewrap'><table><tbody>{body}</tbody></table></div>"


def _money(v: float | None) -> str:
    return _fmt(v, "money") if v is not None else "–"


# --- charts ------------------------------------------------------------------------------------


def _fig_to_img(fig: Any, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _png_file_to_img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _figure(img: str, caption: str) -> str:
    return f"<figure>{img}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _new_figure(width: float = 6.2, height: float = 3.4) -> Any:
    """A matplotlib figure that touches no global state (no pyplot, no backend switch)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


_ORDER = {
    "spend_level": ["high", "medium", "low"],
    "age_band": ["<25", "25-34", "35-49", "50-64", "65+", "unknown"],
    "area_type": ["urban", "rural", "unknown"],
}


def _heatmap(scores: pl.DataFrame, rows: str, cols: str, title: str) -> str | None:
    if scores[rows].null_count() == scores.height or scores[cols].null_count() == scores.height:
        return None
    counts = (
        scores.group_by(rows, cols)
        .agg(pl.len().alias("n"))
        .pivot(on=cols, index=rows, values="n")
        .fill_null(0)
    )
    row_names = _ordered([str(v) for v in counts[rows]], _ORDER.get(rows, []))
    counts = (
        counts.with_columns(pl.col(rows).cast(pl.String))
        .join(pl.DataFrame({rows: row_names}), on=rows, how="right")
        .select(rows, pl.exclude(rows))
    )
    col_names = _ordered([c for c in counts.columns if c != rows], _ORDER.get(cols, []))
    mat = counts.select(col_names).fill_null(0).to_numpy().astype(float)
    lo, hi = float(mat.min()), float(mat.max())
    fig = _new_figure(6.2, max(3.0, 0.36 * counts.height + 1.2))
    ax = fig.subplots()
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
    ax.set_xlabel(_label(cols))
    ax.set_ylabel(_label(rows))
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="customers")
    return _fig_to_img(fig, title)


def _bar(
    labels: list[str], values: list[float], title: str, xlabel: str, ylabel: str, color: str
) -> str:
    fig = _new_figure(6.2, max(2.8, 0.34 * len(labels) + 1.4))
    ax = fig.subplots()
    ax.barh(labels[::-1], values[::-1], color=color)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_formatter(_thousands())
    return _fig_to_img(fig, title)


def _compact(x: float) -> str:
    """``1.2M``, ``400k``, ``9,500``: axis ticks and bar labels that do not run into each other."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:.3g}M"
    if abs(x) >= 1e4:
        return f"{x / 1e3:.3g}k"
    return f"{x:,.0f}"


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _pos: _compact(x))


def _hist(values: np.ndarray, title: str, xlabel: str, log: bool = False) -> str:
    fig = _new_figure()
    ax = fig.subplots()
    v = values[np.isfinite(values)]
    if log:
        v = np.log10(np.clip(v, 1e-2, None))
        xlabel = f"{xlabel}, log10 scale"
    ax.hist(v, bins=50, color="#4c78a8")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("customers")
    if log:
        ticks = [t for t in ax.get_xticks() if v.size and v.min() - 1 <= t <= v.max() + 1]
        ax.set_xticks(ticks, [f"{10**t:,.0f}" if t >= 0 else f"{10**t:.2g}" for t in ticks])
    return _fig_to_img(fig, title)


def _funnel_chart(funnel: pl.DataFrame, cur: str) -> str:
    title = "Lifecycle funnel"
    stages = [_label(s) for s in funnel["lifecycle_stage"]]
    n = funnel["customers"].to_list()
    fig = _new_figure(6.2, max(2.8, 0.5 * len(stages) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(stages))[::-1]
    ax.barh(y, n, color="#72b7b2")
    ax.set_yticks(y, stages)
    top = max(n) if n else 1
    for yi, count, share, clv in zip(
        y, n, funnel["share"], funnel["clv"].fill_null(0.0), strict=True
    ):
        ax.text(
            count + top * 0.01,
            yi,
            f"{count:,} ({share:.0%}) · CLV {_compact(clv)}",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(0, top * 1.55)
    ax.set_title(title)
    ax.set_xlabel("customers")
    ax.set_ylabel("lifecycle stage")
    ax.xaxis.set_major_formatter(_thousands())
    return _fig_to_img(fig, f"{title} (CLV in {cur})")


def _loyalty_chart(split: pl.DataFrame) -> str:
    title = "Predicted loyalty, overall and by segment"
    labels = split["group"].to_list()
    fig = _new_figure(6.6, max(2.8, 0.38 * len(labels) + 1.6))
    ax = fig.subplots()
    y = np.arange(len(labels))[::-1]
    left = np.zeros(len(labels))
    colors = {"promoter": "#54a24b", "passive": "#bab0ac", "detractor": "#e45756"}
    for c in LOYALTY_ORDER:
        share = split[c].fill_null(0.0).to_numpy() * 100
        ax.barh(y, share, left=left, color=colors[c], label=f"{c}s")
        for yi, x0, w in zip(y, left, share, strict=True):
            if w >= 8:
                ax.text(x0 + w / 2, yi, f"{w:.0f}%", ha="center", va="center", fontsize=7)
        left += share
    ax.set_yticks(y, labels)
    ax.set_xlim(0, 100)
    ax.set_title(title)
    ax.set_xlabel("share of customers (%)")
    ax.set_ylabel("segment")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    return _fig_to_img(fig, title)


# --- sections ----------------------------------------------------------------------------------


def _has(scores: pl.DataFrame, col: str) -> bool:
    return col in scores.columns and scores[col].null_count() < scores.height


def _cur(inp: ReportInputs) -> str:
    return inp.currency or "units"


def _population(inp: ReportInputs) -> str:
    """Why the scored count differs from the customers in the input."""
    n = inp.scores.height
    pop = inp.population
    if pop is None:
        return (
            f"<p class='population'>{n:,} customers scored: everyone still a customer on "
            f"{inp.as_of.isoformat()}.</p>"
        )
    day = inp.as_of.isoformat()
    why = [
        f"{count:,} {reason}"
        for count, reason in (
            (pop.n_churned_before_as_of, f"had already left before {day}"),
            (pop.n_not_yet_signed_up, f"sign up on or after {day}"),
            (pop.n_other, "have no signup date"),
        )
        if count
    ]
    if not why:
        return (
            f"<p class='population'><b>{n:,} customers scored</b>: every customer in the "
            "customers table.</p>"
        )
    listed = why[0] if len(why) == 1 else f"{', '.join(why[:-1])} and {why[-1]}"
    return (
        f"<p class='population'><b>{n:,} customers scored</b> of the {pop.n_customers:,} in the "
        f"customers table: {listed}; they are not scored.</p>"
    )


def _headline(inp: ReportInputs) -> str:
    s, cur = inp.scores, _cur(inp)
    cards = [("customers scored", f"{s.height:,}")]
    if _has(s, "segment_id"):
        cards.append(("segments", f"{s['segment_id'].n_unique()}"))
    if _has(s, "clv"):
        cards.append((f"total CLV ({cur})", f"{s['clv'].sum():,.0f}"))
        cards.append((f"median CLV ({cur})", f"{s['clv'].median():,.1f}"))
    if _has(s, "churn_risk_band"):
        profit = inp.churn is not None and inp.churn.retention is not None
        label = "worth a retention offer (band high)" if profit else "customers at high churn risk"
        cards.append((label, f"{(s['churn_risk_band'] == 'high').sum():,}"))
    if _has(s, "churn_probability"):
        cards.append(("expected to leave in the horizon", f"{s['churn_probability'].sum():,.0f}"))
    if _has(s, "value_at_risk"):
        cards.append((f"value at risk ({cur})", f"{s['value_at_risk'].sum():,.0f}"))
    if _has(s, "loyalty_score"):
        cards.append(("mean promoter probability", f"{s['loyalty_score'].mean():.0%}"))
    body = "".join(
        f"<div class='card'><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>"
        for k, v in cards
    )
    return f"<div class='cards'>{body}</div>"


def _matrix_html(matrix: pl.DataFrame, cur: str) -> str:
    tiers = list(dict.fromkeys(matrix["value_tier"]))
    bands = list(dict.fromkeys(matrix["churn_risk_band"]))
    cell = {(r["value_tier"], r["churn_risk_band"]): r for r in matrix.iter_rows(named=True)}
    top = max(float(matrix["value_at_risk"].max() or 0.0), 1e-9)

    def td(customers: int, var: float, shade: bool = True) -> str:
        alpha = 0.08 + 0.55 * var / top if shade and var > 0 else 0.0
        style = f" style='background:rgba(228,87,86,{alpha:.2f})'" if alpha else ""
        return (
            f"<td{style}><b>{customers:,}</b><span>{_money(var)} {html.escape(cur)} "
            "at risk</span></td>"
        )

    head = "".join(
        f"<th scope='col' class=n>{html.escape(_title_case(_label(b)))}</th>" for b in bands
    )
    rows = []
    for t in tiers:
        cells = "".join(td(cell[(t, b)]["customers"], cell[(t, b)]["value_at_risk"]) for b in bands)
        in_tier = matrix.filter(pl.col("value_tier") == t)
        total = td(int(in_tier["customers"].sum()), float(in_tier["value_at_risk"].sum()), False)
        rows.append(
            f"<tr><th scope='row'>{html.escape(_title_case(_label(t)))}</th>{cells}{total}</tr>"
        )
    totals = "".join(
        td(
            int(matrix.filter(pl.col("churn_risk_band") == b)["customers"].sum()),
            float(matrix.filter(pl.col("churn_risk_band") == b)["value_at_risk"].sum()),
            False,
        )
        for b in bands
    )
    grand = td(int(matrix["customers"].sum()), float(matrix["value_at_risk"].sum()), False)
    rows.append(f"<tr><th scope='row'>All tiers</th>{totals}{grand}</tr>")
    return (
        "<div class='tablewrap'><table class='matrix' id='value-risk-matrix'>"
        f"<caption class='muted'>Customers and value at risk ({html.escape(cur)}) by value tier "
        "and churn risk; darker cells hold more value at risk.</caption>"
        f"<thead><tr><th>Value tier</th>{head}<th scope='col' class=n>All bands</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _act(inp: ReportInputs) -> str:
    """Where to act: the value x risk matrix, then the customers to call first."""
    s, cur = inp.scores, _cur(inp)
    parts = ["<h2 id='act'>Where to act</h2>"]
    if not (_has(s, "value_at_risk") and _has(s, "value_tier") and _has(s, "churn_risk_band")):
        return (
            parts[0]
            + "<p class='muted'>Needs the valuation and churn stages: valuation or churn stage "
            "not run.</p>"
        )
    parts.append(
        "<p>Value tier (by CLV) against churn risk over the horizon. Retention budget goes "
        "first where a valuable customer is likely to leave: the top left.</p>"
    )
    parts.append(_matrix_html(value_risk_matrix(s), cur))
    parts.append(_worth_a_call(inp))
    parts.append(_network(inp))
    if not inp.customer_rows:
        parts.append(
            "<p class='muted'>The list of customers to contact first is written beside the "
            "report in the run output, not here: this copy holds no customer rows.</p>"
        )
        return "".join(parts)
    first = save_first(s, inp.save_first_rows)
    dropped = [
        c
        for c, values in (
            ("lifecycle_stage", NOT_TO_SAVE_STAGES),
            ("churn_risk_band", NOT_TO_SAVE_BANDS),
        )
        if c in s.columns and s[c].is_in(values).any()
    ]
    if save_first_rank(s) == "retention_profit":
        parts.append("<h3 id='save-first'>Save first: most profitable to contact</h3>")
        note = (
            "Customers worth a retention offer (band high), ranked by its expected profit "
            "(see above)"
        )
    else:
        parts.append("<h3 id='save-first'>Save first: highest value at risk</h3>")
        note = "Customers ranked by value at risk (churn probability x CLV)"
    if dropped:
        note += "; dormant and lost customers are left out (win them back, not keep them)"
    if inp.save_first_file:
        note += (
            f". The top {first.height:,} with segment, plan, region and reasons: "
            f"<a class='download' href='{html.escape(inp.save_first_file)}' download>"
            f"{html.escape(inp.save_first_file)}</a>"
        )
    parts.append(f"<p>{note}.</p>")
    shown = [
        c
        for c in (
            "customer_id",
            "segment_name",
            "value_tier",
            "lifecycle_stage",
            "clv",
            "churn_probability",
            "value_at_risk",
            "retention_profit",
            "churn_reasons",
            "churn_drivers",
        )
        if c in first.columns
    ]
    more = f"The first 15 of {first.height:,}"
    if inp.save_first_file:
        more += f"; all of them, with plan and region, are in {html.escape(inp.save_first_file)}"
    parts.append(_table(first.select(shown), cur, max_rows=15, more=more + "."))
    return "".join(parts)


def _network(inp: ReportInputs) -> str:
    """Churn contagion: how much a contact's leaving raises churn, and who takes others with
    them (their value at risk through the call graph), ranked with their own."""
    c = inp.churn.contagion if inp.churn is not None else None
    s = inp.scores
    if c is None or not _has(s, "value_at_risk_network"):
        return ""
    cur = html.escape(_cur(inp))
    parts = ["<h3 id='network'>Who takes others with them</h3>"]
    interval = f"{c.coefficient:.2f}, 95% interval {c.ci_low:.2f} to {c.ci_high:.2f}"
    if c.significant:
        parts.append(
            f"<p>Customers whose contacts leave, leave more. Over the last {c.months} months "
            f"({c.rows:,} customer months, {c.events:,} departures), each contact gone in the "
            f"{c.contagion_days} days before a month multiplied a typical customer's odds of "
            f"leaving that month by <b>{c.odds_factor:.2f}</b> (one of their "
            f"{c.median_contacts} contacts; effect {interval}, compared with customers alike "
            "in plan, tenure, complaints, region and contact count). So a departure costs "
            "more than the customer's own CLV: the <b>value at risk through contacts</b> is "
            "the churn probability x the CLV their contacts are expected to take with them "
            "when they go.</p>"
        )
    else:
        parts.append(
            f"<p>No evidence that a contact's leaving raises churn here (effect {interval}, "
            f"over {c.rows:,} customer months of the last {c.months} months): network values "
            "are 0.</p>"
        )
    parts.append(
        _facts(
            [
                (f"Own value at risk ({_cur(inp)})", _money(c.value_at_risk)),
                (f"Value at risk through contacts ({_cur(inp)})", _money(c.value_at_risk_network)),
                (
                    "Customers whose leaving would cost through contacts",
                    f"{c.customers_with_network_value:,}",
                ),
            ]
        )
    )
    img = inp.images.get("churn_network")
    if c.significant and img is not None and Path(img).is_file():
        parts.append(
            _figure(
                _png_file_to_img(Path(img), "churn_network"),
                "Own value at risk vs through contacts: above the line, a departure costs "
                "more through the people the customer calls",
            )
        )
    if c.significant and inp.customer_rows and _has(s, "value_at_risk"):
        ranked = (
            s.filter(~pl.col("lifecycle_stage").fill_null("").is_in(list(NOT_TO_SAVE_STAGES)))
            .with_columns(
                (pl.col("value_at_risk") + pl.col("value_at_risk_network")).alias("total_at_risk")
            )
            .sort("total_at_risk", descending=True, nulls_last=True)
        )
        shown = [
            col
            for col in (
                "customer_id",
                "segment_name",
                "clv",
                "churn_probability",
                "value_at_risk",
                "value_at_risk_network",
                "total_at_risk",
            )
            if col in ranked.columns
        ]
        parts.append(
            "<p>Ranked by both: what each customer's leaving would cost in their own CLV and "
            f"through their contacts ({cur}).</p>"
        )
        parts.append(_table(ranked.select(shown), cur, max_rows=10, more="The first 10."))
    return "".join(parts)


def _worth_a_call(inp: ReportInputs) -> str:
    """The retention campaign in money: who is worth an offer, and what the model earns."""
    r = inp.churn.retention if inp.churn is not None else None
    if r is None:
        return ""
    cur = html.escape(_cur(inp))
    parts = [
        "<h3 id='worth-a-call'>Who is worth a retention offer</h3>",
        f"<p>An offer costs {_money(r.offer_cost)} {cur} to whoever accepts it and "
        f"{_money(r.contact_cost)} {cur} to make; {r.accept_rate:.0%} of the customers who "
        "would leave accept it and stay, and those who would stay take it anyway "
        "(<code>[retention]</code> in the config). Contacting a customer pays when "
        "accept rate x churn probability x (CLV - offer) exceeds what the offer costs on "
        "the customers who would have stayed: those are band <b>high</b>.</p>",
    ]
    img = inp.images.get("churn_profit")
    if img is not None and Path(img).is_file():
        parts.append(
            _figure(
                _png_file_to_img(Path(img), "churn_profit"),
                "Profit by share contacted: checked on known outcomes (left), this run (right)",
            )
        )
    parts.append(
        _facts(
            [
                (
                    "Worth an offer now (band high)",
                    f"{r.contacts:,} of {r.candidates:,} customers ({r.contact_share:.1%})",
                ),
                (
                    f"Expected profit of offering it to them ({_cur(inp)})",
                    _money(r.expected_profit),
                ),
                (
                    "Checked out of time: expected maximum profit (EMPC)",
                    f"{r.empc:,.2f} {_cur(inp)} per customer, contacting {r.empc_share:.1%} "
                    f"(every customer valued at the mean CLV, {_money(r.customer_value)})",
                ),
            ]
        )
    )
    return "".join(parts)


def _segment_cards(inp: ReportInputs) -> str:
    s, cur = inp.scores, _cur(inp)
    aggs: list[pl.Expr] = [
        pl.len().cast(pl.Int64).alias("customers"),
        pl.col("segment_name").first(),
    ]
    for c, expr in (
        ("clv", pl.col("clv").mean().alias("clv_mean")),
        ("churn_probability", pl.col("churn_probability").mean().alias("churn_mean")),
        ("value_at_risk", pl.col("value_at_risk").sum().alias("var_sum")),
        ("loyalty_class", (pl.col("loyalty_class") == "promoter").mean().alias("promoters")),
    ):
        if _has(s, c):
            aggs.append(expr)
    stats = s.group_by("segment_id").agg(aggs).sort("customers", descending=True)
    profiles: dict[int, dict[str, Any]] = {}
    if inp.segment_profiles is not None and "segment_id" in inp.segment_profiles.columns:
        profiles = {r["segment_id"]: r for r in inp.segment_profiles.iter_rows(named=True)}
    total = max(s.height, 1)
    cards = []
    for row in stats.iter_rows(named=True):
        prof = profiles.get(row["segment_id"], {})
        facts = [("customers", f"{row['customers']:,} ({row['customers'] / total:.0%})")]
        if prof.get("revenue_365d_mean") is not None:
            facts.append((f"revenue, last 12 months ({cur})", _money(prof["revenue_365d_mean"])))
        if row.get("clv_mean") is not None:
            facts.append((f"mean CLV ({cur})", _money(row["clv_mean"])))
        if row.get("churn_mean") is not None:
            facts.append(("mean churn probability", f"{row['churn_mean']:.1%}"))
        if row.get("var_sum") is not None:
            facts.append((f"value at risk ({cur})", _money(row["var_sum"])))
        if row.get("promoters") is not None:
            facts.append(("promoters (predicted)", f"{row['promoters']:.0%}"))
        dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
        texts = []
        for key, title in (
            ("distinguishing", "Stands out by"),
            ("top_occupations", "Occupations"),
            ("top_regions", "Regions"),
        ):
            if prof.get(key):
                texts.append(f"<p><b>{title}:</b> {html.escape(str(prof[key]))}</p>")
        name = row["segment_name"] or f"Segment {row['segment_id']}"
        cards.append(
            f"<div class='seg'><h3>{html.escape(str(name))}</h3><dl>{dl}</dl>{''.join(texts)}</div>"
        )
    return f"<div class='segcards' id='segment-cards'>{''.join(cards)}</div>"


def _segments(inp: ReportInputs) -> str:
    s, cur = inp.scores, _cur(inp)
    parts = ["<h2 id='segments'>Who our customers are</h2>"]
    if _has(s, "segment_id"):
        parts.append("<h3>Behavioural segments</h3>")
        parts.append(_segment_cards(inp))
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
        parts.append(_migration(inp.migration, cur))
    return "".join(parts)


def _migration(migration: pl.DataFrame, cur: str) -> str:
    head = "<h3>Segment migration since the previous run</h3>"
    cols = {"previous_segment_id", "segment_id", "customers"}
    if not cols <= set(migration.columns):
        return head + _table(migration, cur)
    total = int(migration["customers"].sum())
    stayed = int(
        migration.filter(pl.col("previous_segment_id") == pl.col("segment_id"))["customers"].sum()
    )
    moves = migration.filter(pl.col("previous_segment_id") != pl.col("segment_id")).sort(
        "customers", descending=True
    )
    keep = [
        c
        for c in ("previous_segment_name", "segment_name", "customers", "share_of_previous")
        if c in moves.columns
    ]
    return (
        head + f"<p>{stayed:,} of {total:,} customers ({stayed / max(total, 1):.0%}) kept their "
        "segment; the largest moves:</p>"
        + _table(moves.select(keep), cur, max_rows=12, titles={"segment_name": "New segment"})
    )


def _lifecycle(inp: ReportInputs) -> str:
    s, cur = inp.scores, _cur(inp)
    parts = ["<h2 id='lifecycle'>Where they are in their life with us</h2>"]
    if not _has(s, "lifecycle_stage"):
        return parts[0] + "<p class='muted'>Valuation stage not run.</p>"
    funnel = lifecycle_funnel(s)
    parts.append(
        "<div class='grid'>"
        + _figure(
            _funnel_chart(funnel, cur),
            f"Customers per lifecycle stage, new to dormant, with the CLV ({cur}) each holds",
        )
        + "<div>"
        + _table(funnel, cur, titles={"clv": f"CLV ({cur})"})
        + "<p class='muted'>New: first months with us; active: buying as usual; at risk: "
        "buying less than usual; dormant: stopped buying (P(alive) low).</p></div></div>"
    )
    return "".join(parts)


def _value(inp: ReportInputs) -> str:
    s, cur = inp.scores, _cur(inp)
    parts = ["<h2 id='value'>What they are worth</h2>"]
    if not _has(s, "clv"):
        return parts[0] + "<p class='muted'>Valuation stage not run.</p>"
    caption = "Customer lifetime value over the horizon (discounted margin), log scale"
    zero = int((s["clv"] <= 0.01).sum())
    if zero:
        caption += f"; the {zero:,} customers worth 0.01 or less are the bar at the left edge"
    grid = [
        _figure(_hist(s["clv"].to_numpy(), "CLV distribution", f"CLV ({cur})", log=True), caption)
    ]
    if _has(s, "value_tier"):
        tiers = (
            s.group_by("value_tier")
            .agg(pl.len().alias("n"), pl.col("clv").sum().alias("clv"))
            .sort(_rank("value_tier", TIER_ORDER))
        )
        grid.append(
            _figure(
                _bar(
                    tiers["value_tier"].to_list(),
                    tiers["clv"].to_list(),
                    "Total CLV by value tier",
                    f"total CLV ({cur})",
                    "value tier",
                    "#b279a2",
                ),
                "Value tiers: "
                + ", ".join(
                    f"{t} {n:,}" for t, n in zip(tiers["value_tier"], tiers["n"], strict=True)
                )
                + " customers",
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
        parts.append(
            "<h3>How the value is modelled</h3>" + _facts(_valuation_facts(inp.valuation, cur))
        )
        parts.append(_revenue_holdout(inp.valuation, cur))
    return "".join(parts)


def _revenue_holdout(v: ValuationReport, cur: str) -> str:
    """What the value models said a year ago against the revenue that came in, per plan."""
    r = v.revenue_holdout
    if r is None:
        if v.revenue_holdout_error:
            return (
                f"<p class='muted'>No revenue holdout: {html.escape(v.revenue_holdout_error)}</p>"
            )
        return ""
    rows = pl.DataFrame(
        r.rows,
        schema={
            "plan_type": pl.String,
            "model": pl.String,
            "customers": pl.Int64,
            "mae": pl.Float64,
            "mean_predicted": pl.Float64,
            "mean_actual": pl.Float64,
        },
    ).with_columns(
        pl.col("model").replace({"sbg": "contract (sbg)"}),
        (pl.col("mae") / pl.col("mean_actual")).alias("relative"),
    )
    kept = "the contract model (sbg)" if v.retention is not None else v.model
    text = (
        f"<h3>Does the value hold up?</h3><p>Every model refitted {r.days} days earlier (at "
        f"{r.cut}) and its revenue forecast for the customers there compared with what they "
        f"really paid up to as_of (no discount or margin). Postpaid customers are valued by "
        f"<b>{html.escape(kept)}</b>.</p>"
    )
    shown = ["plan_type", "model", "customers", "mean_predicted", "mean_actual", "mae", "relative"]
    return text + _table(rows.select(shown), cur)


def _sig(v: Any, digits: int = 4) -> str:
    return f"{float(v):.{digits}g}" if isinstance(v, int | float) else str(v)


def _valuation_facts(v: ValuationReport, cur: str) -> list[tuple[str, str]]:
    """The valuation summary in an analyst's words: model, what its parameters mean, spend."""
    facts: list[tuple[str, str]] = [
        (
            "Purchase model",
            f"{v.model} ("
            + ", ".join(f"{k}={_sig(x)}" for k, x in v.params.items())
            + "; time in days)",
        )
    ]
    rates = v.population_rates_per_day
    if rates.get("purchase_rate"):
        facts.append(
            ("A typical active customer buys", f"every {1 / rates['purchase_rate']:.0f} days")
        )
    if "dropout" in rates:
        facts.append(("Chance of leaving after a purchase", f"{rates['dropout']:.2%}"))
    if v.retention is not None:
        r = v.retention
        facts.append(
            (
                "Postpaid customers: contract retention (shifted-beta-geometric)",
                f"{v.n_customers_contract:,} valued by their monthly bill x the retention "
                f"curve fitted on {int(r['n_customers']):,} postpaid customers "
                f"({int(r['n_churned']):,} churned): mean monthly churn "
                f"{r['alpha'] / (r['alpha'] + r['beta']):.1%}, a new customer's 12-month "
                f"retention {r['retention_12m']:.0%}",
            )
        )
    facts.append(("Mean P(alive) at as_of", f"{v.mean_p_alive:.1%}"))
    facts.append((f"Mean spend per purchase ({cur})", _sig(v.spend.population_mean)))
    corr = v.spend.frequency_monetary_corr
    if corr is not None:
        verdict = "independent enough" if abs(corr) <= 0.3 else "check the spend model"
        facts.append(("Frequency-spend correlation", f"{corr:+.2f} ({verdict})"))
    facts += [
        ("CLV horizon", f"{v.horizon_days:,} days"),
        ("Margin on revenue", f"{v.margin:.0%}"),
        ("Annual discount rate", f"{v.annual_discount_rate:.0%}"),
    ]
    return facts


def _model_quality(churn: ChurnReport) -> list[tuple[str, str]]:
    """The churn model's out-of-time checks in words (the raw metrics go to the appendix)."""
    m = churn.churn_metrics()
    facts: list[tuple[str, str]] = [("Model", churn.model_choice())]
    if "n" in m:
        facts.append(("Checked on", f"{m['n']:,.0f} customers, out of time"))
    if "roc_auc" in m:
        facts.append(("Ranking quality (AUC: 0.5 is chance, 1 is perfect)", f"{m['roc_auc']:.2f}"))
    if "capture_top_decile" in m:
        lift = f" ({m['lift_top_decile']:.1f}x chance)" if "lift_top_decile" in m else ""
        facts.append(
            ("Leavers found in the riskiest 10%", f"{m['capture_top_decile']:.0%} of all{lift}")
        )
    if "mean_prediction" in m and "base_rate" in m:
        facts.append(
            (
                "Predicted vs observed churn rate",
                f"{m['mean_prediction']:.1%} vs {m['base_rate']:.1%}",
            )
        )
    trained = f"{m['train_rows']:,.0f} customer snapshots at " if "train_rows" in m else ""
    cuts = churn.train_cuts or [churn.train_cut]
    facts.append(
        (
            "Trained on",
            f"{trained}{', '.join(c.isoformat() for c in cuts)}, checked on "
            f"{churn.valid_cut.isoformat()}; churn within {churn.horizon_days} days",
        )
    )
    if len(churn.learning_curve) > 1:
        steps = ", ".join(
            f"{int(r['snapshots'])}: {r['roc_auc']:.3f}" for r in churn.learning_curve
        )
        facts.append(("AUC by snapshots stacked (learning curve)", steps))
    return facts


def _churn(inp: ReportInputs) -> str:
    s, cur = inp.scores, _cur(inp)
    parts = ["<h2 id='churn'>Who is about to leave, and why</h2>"]
    if not _has(s, "churn_probability"):
        return parts[0] + "<p class='muted'>Churn stage not run.</p>"
    grid = [
        _figure(
            _hist(s["churn_probability"].to_numpy(), "Churn probability", "probability of leaving"),
            "Calibrated churn probability over the horizon",
        )
    ]
    for key, caption in (
        ("churn_lift", "Lift and capture by risk decile, out of time"),
        ("churn_reliability", "Reliability curve: predicted vs observed churn, out of time"),
        ("churn_importance", "Top churn drivers overall (mean |contribution|)"),
        ("churn_learning_curve", "Out-of-time quality by training snapshots stacked"),
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
                    f"value at risk ({cur}): churn probability x CLV",
                    "segment",
                    "#54a24b",
                ),
                "Where retention money matters most",
            )
        )
    parts.append(f"<div class='grid'>{''.join(grid)}</div>")
    if inp.churn is not None:
        parts.append(
            "<h3>How far to trust the churn scores</h3>" + _facts(_model_quality(inp.churn))
        )
    return "".join(parts)


def _loyalty(inp: ReportInputs) -> str:
    s, cur = inp.scores, _cur(inp)
    parts = ["<h2 id='loyalty'>How loyal they are</h2>"]
    if not _has(s, "loyalty_class"):
        why = inp.churn.loyalty_skipped if inp.churn is not None else None
        reason = f" ({html.escape(why)})" if why else ""
        return parts[0] + f"<p class='muted'>No loyalty scores in this run{reason}.</p>"
    m = inp.churn.metrics if inp.churn is not None else {}
    trained = m.get("loyalty.train_rows")
    source = (
        f"trained on {trained:,.0f} survey answers"
        if trained is not None
        else "trained on the survey answers of an earlier run"
    )
    checked = ""
    if m.get("loyalty.accuracy") is not None and m.get("loyalty.n") is not None:
        checked = (
            f"; it names the right class for {m['loyalty.accuracy']:.0%} of "
            f"{m['loyalty.n']:,.0f} later answers"
        )
    parts.append(
        f"<p>Each customer's most likely answer to the next survey (promoter 9-10, passive 7-8, "
        f"detractor 0-6), from a model {source}{checked}.</p>"
    )
    overall = loyalty_split(s)
    split = overall
    if _has(s, "segment_name"):
        split = pl.concat([overall, loyalty_split(s, "segment_name")])
    parts.append(
        _figure(
            _loyalty_chart(split),
            f"Promoters, passives and detractors among scored customers, model {source}",
        )
    )
    parts.append(_table(split, cur))
    return "".join(parts)


def _quality(inp: ReportInputs) -> str:
    parts = ["<h2 id='quality'>Data quality</h2>"]
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
            ),
            _cur(inp),
        )
    )
    return "".join(parts)


def _raw_table(rows: list[tuple[str, Any]]) -> str:
    """Raw names and values, as logged to MLflow."""

    def value(v: Any) -> str:
        if isinstance(v, float):
            return "nan" if np.isnan(v) else f"{v:.6g}"
        return html.escape(str(v))

    body = "".join(
        f"<tr><td><code>{html.escape(k)}</code></td><td class=n>{value(v)}</td></tr>"
        for k, v in rows
    )
    return (
        "<div class='tablewrap'><table><thead><tr><th>name</th><th class=n>value</th></tr>"
        f"</thead><tbody>{body}</tbody></table></div>"
    )


def _appendix(inp: ReportInputs) -> str:
    parts = ["<h2 id='appendix'>Appendix for data scientists</h2>"]
    if inp.churn is None and inp.valuation is None:
        return parts[0] + "<p class='muted'>No model was fitted in this run.</p>"
    parts.append(
        "<p>Raw metrics as logged to MLflow (out of time: the later cut's report half).</p>"
    )
    if inp.churn is not None:
        metrics = [
            (k, v)
            for k, v in inp.churn.metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        churn = [(k, v) for k, v in metrics if k.startswith("churn.")]
        loyalty = [(k, v) for k, v in metrics if k.startswith("loyalty.")]
        parts.append("<h3>Churn model</h3>" + _raw_table(churn))
        parts.append(
            _raw_table(
                [
                    ("train_cut", inp.churn.train_cut.isoformat()),
                    ("valid_cut", inp.churn.valid_cut.isoformat()),
                    ("horizon_days", inp.churn.horizon_days),
                    ("n_features", len(inp.churn.features)),
                ]
            )
        )
        if loyalty:
            parts.append("<h3>Loyalty model</h3>" + _raw_table(loyalty))
        elif inp.churn.loyalty_skipped:
            parts.append(
                f"<p class='muted'>Loyalty model skipped: {html.escape(inp.churn.loyalty_skipped)}"
                "</p>"
            )
    v = inp.valuation
    if v is not None:
        rows: list[tuple[str, Any]] = [("model", v.model), ("time_unit", v.time_unit)]
        rows += [(f"params.{k}", x) for k, x in v.params.items()]
        rows += [
            ("log_likelihood", v.log_likelihood),
            ("n_customers_fitted", v.n_customers_fitted),
            ("n_distinct_triples", v.n_distinct_triples),
            ("penalizer", v.penalizer),
            ("spend.model", v.spend.model),
            *[(f"spend.params.{k}", x) for k, x in v.spend.params.items()],
            ("spend.log_likelihood", v.spend.log_likelihood),
            ("spend.n_customers_fitted", v.spend.n_customers_fitted),
            ("spend.n_customers_excluded", v.spend.n_customers_excluded),
            ("monthly_discount_rate", v.monthly_discount_rate),
            ("n_customers_without_purchase", v.n_customers_without_purchase),
            *[(f"tier_cut_points.{k}", x) for k, x in v.tier_cut_points.items()],
        ]
        holdout = getattr(v.holdout, "metrics", None) or {}
        for model, values in holdout.items():
            for k, x in (values or {}).items():
                if isinstance(x, int | float) and not isinstance(x, bool):
                    rows.append((f"holdout.{model}.{k}", x))
        if v.holdout_error:
            rows.append(("holdout_error", v.holdout_error))
        if v.model_uri:
            rows.append(("model_uri", v.model_uri))
        parts.append("<h3>Valuation models</h3>" + _raw_table(rows))
        if v.notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in v.notes) + "</ul>")
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
            _population(inp),
            _headline(inp),
            _act(inp),
            _segments(inp),
            _lifecycle(inp),
            _value(inp),
            _churn(inp),
            _loyalty(inp),
            _quality(inp),
            _appendix(inp),
        ]
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>crm-engine report {inp.as_of.isoformat()}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>"
    )


def write_report(inp: ReportInputs, path: Path) -> Path:
    """Render and write ``report.html``."""
    path = Path(path)
    path.write_text(render_report(inp), encoding="utf-8")
    return path
