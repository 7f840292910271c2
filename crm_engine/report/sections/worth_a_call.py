"""Who is worth a retention offer: the retention campaign in money."""

from __future__ import annotations

import html
from pathlib import Path

from crm_engine.report.charts import figure, png_file_to_img
from crm_engine.report.formatting import facts_table, money
from crm_engine.report.inputs import ReportInputs, currency_label


def worth_a_call_section(inp: ReportInputs) -> str:
    """The retention campaign in money: who is worth an offer, and what the model earns."""
    r = inp.churn.retention if inp.churn is not None else None
    if r is None:
        return ""
    unit = currency_label(inp)
    cur = html.escape(unit)
    parts = [
        "<h3 id='worth-a-call'>Who is worth a retention offer</h3>",
        f"<p>An offer costs {money(r.offer_cost)} {cur} to whoever accepts it and "
        f"{money(r.contact_cost)} {cur} to make; {r.accept_rate:.0%} of the customers who "
        "would leave accept it and stay, and those who would stay take it anyway "
        "(<code>[retention]</code> in the config). Contacting a customer pays when "
        "accept rate x churn probability x (CLV - offer) exceeds what the offer costs on "
        "the customers who would have stayed: those are band <b>high</b>.</p>",
    ]
    img = inp.images.get("churn_profit")
    if img is not None and Path(img).is_file():
        parts.append(
            figure(
                png_file_to_img(Path(img), "churn_profit"),
                "Profit by share contacted: checked on known outcomes (left), this run (right)",
            )
        )
    parts.append(
        facts_table(
            [
                (
                    "Worth an offer now (band high)",
                    f"{r.contacts:,} of {r.candidates:,} customers ({r.contact_share:.1%})",
                ),
                (
                    f"Expected profit of offering it to them ({unit})",
                    money(r.expected_profit),
                ),
                (
                    "Checked out of time: expected maximum profit (EMPC)",
                    f"{r.empc:,.2f} {unit} per customer, contacting {r.empc_share:.1%} "
                    f"(every customer valued at the mean CLV, {money(r.customer_value)})",
                ),
            ]
        )
    )
    return "".join(parts)
