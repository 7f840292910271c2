"""Where they are in their life with us: the lifecycle funnel."""

from __future__ import annotations

from crm_engine.report.charts import figure, funnel_chart
from crm_engine.report.formatting import html_table
from crm_engine.report.inputs import ReportInputs, currency_label
from crm_engine.report.section import Section
from crm_engine.report.views import lifecycle_funnel


def body(inp: ReportInputs) -> str:
    """Where they are in their life with us: the lifecycle funnel."""
    s, cur = inp.parts, currency_label(inp)
    parts: list[str] = []
    funnel = lifecycle_funnel(s)
    parts.append(
        "<div class='grid'>"
        + figure(
            funnel_chart(funnel, cur),
            f"Customers per lifecycle stage, new to dormant, with the CLV ({cur}) each holds",
        )
        + "<div>"
        + html_table(funnel, cur, titles={"clv": f"CLV ({cur})"})
        + "<p class='muted'>New: first months with us; active: buying as usual; at risk: "
        "buying less than usual; dormant: stopped buying (P(alive) low).</p></div></div>"
    )
    return "".join(parts)


SECTION = Section(
    "lifecycle", "Where they are in their life with us", body, needs=("lifecycle_stage",)
)
