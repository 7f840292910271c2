"""How loyal they are: predicted promoters, passives and detractors."""

from __future__ import annotations

import html

import polars as pl

from crm_engine.report.charts import figure, loyalty_chart
from crm_engine.report.formatting import html_table
from crm_engine.report.inputs import ReportInputs, currency_label
from crm_engine.report.section import Section
from crm_engine.report.views import loyalty_split


def body(inp: ReportInputs) -> str:
    """How loyal they are: predicted loyalty classes overall and by segment."""
    s, cur = inp.parts, currency_label(inp)
    parts: list[str] = []
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
    if inp.has("segment_name"):
        split = pl.concat([overall, loyalty_split(s, "segment_name")])
    parts.append(
        figure(
            loyalty_chart(split),
            f"Promoters, passives and detractors among scored customers, model {source}",
        )
    )
    parts.append(html_table(split, cur))
    return "".join(parts)


def _not_run(inp: ReportInputs) -> str:
    """No loyalty scores, and the churn stage's reason when it gives one."""
    why = inp.churn.loyalty_skipped if inp.churn is not None else None
    reason = f" ({html.escape(why)})" if why else ""
    return f"No loyalty scores in this run{reason}."


SECTION = Section("loyalty", "How loyal they are", body, needs=("loyalty_class",), not_run=_not_run)
