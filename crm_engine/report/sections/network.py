"""Who takes others with them: churn contagion through the call graph."""

from __future__ import annotations

import html
from pathlib import Path

import polars as pl

from crm_engine.parts import gather_rows, top_rows
from crm_engine.report.charts import figure, png_file_to_img
from crm_engine.report.formatting import facts_table, html_table, money
from crm_engine.report.inputs import ReportInputs, currency_label
from crm_engine.report.views import NOT_TO_SAVE_STAGES


def network_section(inp: ReportInputs) -> str:
    """Churn contagion: how much a contact's leaving raises churn, and who takes others with
    them (their value at risk through the call graph), ranked with their own."""
    c = inp.churn.contagion if inp.churn is not None else None
    if c is None or not inp.has("value_at_risk_network"):
        return ""
    cur = html.escape(currency_label(inp))
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
        facts_table(
            [
                (f"Own value at risk ({currency_label(inp)})", money(c.value_at_risk)),
                (
                    f"Value at risk through contacts ({currency_label(inp)})",
                    money(c.value_at_risk_network),
                ),
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
            figure(
                png_file_to_img(Path(img), "churn_network"),
                "Own value at risk vs through contacts: above the line, a departure costs "
                "more through the people the customer calls",
            )
        )
    if c.significant and inp.customer_rows and inp.has("value_at_risk"):
        total = (pl.col("value_at_risk") + pl.col("value_at_risk_network")).alias("total_at_risk")
        saved = ~pl.col("lifecycle_stage").fill_null("").is_in(list(NOT_TO_SAVE_STAGES))
        columns = inp.parts.plan().collect_schema().names()
        shown = [
            col
            for col in (
                "customer_id",
                "segment_name",
                "clv",
                "churn_probability",
                "value_at_risk",
                "value_at_risk_network",
            )
            if col in columns
        ]
        parts.append(
            "<p>Ranked by both: what each customer's leaving would cost in their own CLV and "
            f"through their contacts ({cur}).</p>"
        )
        # a top-k where the scores lie (ties by a hash of customer_id), only 11 rows read
        chosen = top_rows(inp.parts, total, 11, among=saved) & saved
        top = (
            gather_rows(inp.parts, chosen, shown)
            .with_columns(total)
            .sort(["total_at_risk", "customer_id"], descending=[True, False], nulls_last=True)
        )
        parts.append(html_table(top, cur, max_rows=10, more="The first 10."))
    return "".join(parts)
