"""Where they are in their life with us: the lifecycle funnel."""

from __future__ import annotations

from crm_engine.report.charts import figure, funnel_chart
from crm_engine.report.formatting import html_table
from crm_engine.report.inputs import ReportInputs, currency_label, has_values
from crm_engine.report.views import lifecycle_funnel


def lifecycle_section(inp: ReportInputs) -> str:
    """Where they are in their life with us: the lifecycle funnel."""
    s, cur = inp.scores, currency_label(inp)
    parts = ["<h2 id='lifecycle'>Where they are in their life with us</h2>"]
    if not has_values(s, "lifecycle_stage"):
        return parts[0] + "<p class='muted'>Valuation stage not run.</p>"
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
