"""The headline cards: the run's numbers at a glance."""

from __future__ import annotations

import html
import math

import polars as pl

from crm_engine.parts import count_rows, exact_quantiles, exact_sums, group_sums
from crm_engine.report.inputs import ReportInputs, currency_label


def headline_section(inp: ReportInputs) -> str:
    """The headline cards: the run's main numbers."""
    parts, cur = inp.parts, currency_label(inp)
    cards = [("customers scored", f"{inp.height:,}")]
    if inp.has("segment_id"):
        ids = group_sums(parts, [pl.col("segment_id")])
        cards.append(("segments", f"{ids.filter(pl.col('segment_id').is_not_null()).height}"))
    sums = dict(
        zip(
            ("clv", "churn_probability", "value_at_risk", "loyalty_score"),
            exact_sums(parts, "clv", "churn_probability", "value_at_risk", "loyalty_score"),
            strict=True,
        )
    )
    if inp.has("clv"):
        median = (exact_quantiles(parts, "clv", [0.5]) or [math.nan])[0]
        cards.append((f"total CLV ({cur})", f"{sums['clv']:,.0f}"))
        cards.append((f"median CLV ({cur})", f"{median:,.1f}"))
    if inp.has("churn_risk_band"):
        profit = inp.churn is not None and inp.churn.retention is not None
        label = "worth a retention offer (band high)" if profit else "customers at high churn risk"
        (high,) = count_rows(parts, pl.col("churn_risk_band") == "high")
        cards.append((label, f"{high:,}"))
    if inp.has("churn_probability"):
        cards.append(("expected to leave in the horizon", f"{sums['churn_probability']:,.0f}"))
    if inp.has("value_at_risk"):
        cards.append((f"value at risk ({cur})", f"{sums['value_at_risk']:,.0f}"))
    if inp.has("loyalty_score"):
        (n,) = count_rows(parts, pl.col("loyalty_score").is_not_null())
        cards.append(("mean promoter probability", f"{sums['loyalty_score'] / n:.0%}"))
    body = "".join(
        f"<div class='card'><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>"
        for k, v in cards
    )
    return f"<div class='cards'>{body}</div>"
