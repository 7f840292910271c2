"""Who is about to leave, and why: churn scores and how far to trust them."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from crm_engine.parts import group_sums
from crm_engine.report.charts import bar_chart, figure, histogram, png_file_to_img
from crm_engine.report.formatting import facts_table
from crm_engine.report.inputs import ReportInputs, currency_label
from crm_engine.report.section import Section
from crm_engine.stage_reports import ChurnReport


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


def body(inp: ReportInputs) -> str:
    """Who is about to leave, and why: churn scores and their quality."""
    s, cur = inp.parts, currency_label(inp)
    parts: list[str] = []
    grid = [
        figure(
            histogram(s, "churn_probability", "Churn probability", "probability of leaving"),
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
            grid.append(figure(png_file_to_img(path, key), caption))
    if inp.has("value_at_risk") and inp.has("segment_name"):
        var = group_sums(s, [pl.col("segment_name")], [pl.col("value_at_risk").alias("v")])
        var = var.sort(["v", "segment_name"], descending=[True, False])
        grid.append(
            figure(
                bar_chart(
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
            "<h3>How far to trust the churn scores</h3>" + facts_table(_model_quality(inp.churn))
        )
    return "".join(parts)


SECTION = Section(
    "churn",
    "Who is about to leave, and why",
    body,
    needs=("churn_probability",),
    private=True,  # who to save, by own and network value at risk (sections.network)
)
