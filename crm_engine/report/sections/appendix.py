"""The appendix for data scientists: what each model stage logged to MLflow, as it logged it."""

from __future__ import annotations

import html
from typing import Any

from crm_engine.report.formatting import raw_table
from crm_engine.report.inputs import Logged, ReportInputs
from crm_engine.report.section import Section

MODEL_STAGES = {
    "segmentation": "Segmentation",
    "valuation": "Valuation",
    "churn": "Churn and loyalty",
}
"""The stages whose MLflow runs the appendix shows, and their titles, in run order."""


def _numbers(values: Any) -> list[tuple[str, Any]]:
    return sorted(
        (k, v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)
    )


def _stage(title: str, logged: Logged) -> str:
    parts = [f"<h3>{html.escape(title)}</h3>"]
    if logged.metrics:
        parts.append("<h4>Metrics</h4>" + raw_table(_numbers(logged.metrics)))
    if logged.params:
        parts.append("<h4>Parameters</h4>" + raw_table(sorted(logged.params.items())))
    return "".join(parts)


def _notes(inp: ReportInputs) -> str:
    """What a stage said beside its numbers: why a model was skipped or failed, notes."""
    notes: list[str] = []
    if inp.churn is not None and inp.churn.loyalty_skipped:
        notes.append(f"Loyalty model skipped: {inp.churn.loyalty_skipped}")
    v = inp.valuation
    if v is not None:
        if v.holdout_error:
            notes.append(f"Valuation holdout: {v.holdout_error}")
        notes += list(v.notes)
    if not notes:
        return ""
    return "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"


def body(inp: ReportInputs) -> str:
    """Each model stage's metrics and parameters as logged to MLflow."""
    parts = [
        "<p>Each model stage's metrics and parameters as logged to its MLflow run (model "
        "metrics out of time: the later cut's report half).</p>"
    ]
    for name, title in MODEL_STAGES.items():
        logged = inp.logged.get(name)
        if logged is not None and (logged.metrics or logged.params):
            parts.append(_stage(title, logged))
    parts.append(_notes(inp))
    return "".join(parts)


SECTION = Section(
    "appendix",
    "Appendix for data scientists",
    body,
    not_run="No model was fitted in this run.",
    ran=lambda inp: any(inp.logged.get(name) for name in MODEL_STAGES),
)
