"""The appendix for data scientists: raw model metrics as logged to MLflow."""

from __future__ import annotations

import html
from typing import Any

from crm_engine.report.formatting import raw_table
from crm_engine.report.inputs import ReportInputs
from crm_engine.report.section import Section


def body(inp: ReportInputs) -> str:
    """Raw model metrics for data scientists, as logged to MLflow."""
    parts = ["<p>Raw metrics as logged to MLflow (out of time: the later cut's report half).</p>"]
    if inp.churn is not None:
        metrics = [
            (k, v)
            for k, v in inp.churn.metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        churn = [(k, v) for k, v in metrics if k.startswith("churn.")]
        loyalty = [(k, v) for k, v in metrics if k.startswith("loyalty.")]
        parts.append("<h3>Churn model</h3>" + raw_table(churn))
        parts.append(
            raw_table(
                [
                    ("train_cut", inp.churn.train_cut.isoformat()),
                    ("valid_cut", inp.churn.valid_cut.isoformat()),
                    ("horizon_days", inp.churn.horizon_days),
                    ("n_features", len(inp.churn.features)),
                ]
            )
        )
        if loyalty:
            parts.append("<h3>Loyalty model</h3>" + raw_table(loyalty))
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
        parts.append("<h3>Valuation models</h3>" + raw_table(rows))
        if v.notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in v.notes) + "</ul>")
    return "".join(parts)


SECTION = Section(
    "appendix",
    "Appendix for data scientists",
    body,
    not_run="No model was fitted in this run.",
    ran=lambda inp: inp.churn is not None or inp.valuation is not None,
)
