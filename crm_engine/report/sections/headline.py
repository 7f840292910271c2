"""The headline cards: the run's numbers at a glance."""

from __future__ import annotations

import html

from crm_engine.report.inputs import ReportInputs, currency_label, has_values


def headline_section(inp: ReportInputs) -> str:
    """The headline cards: the run's main numbers."""
    s, cur = inp.scores, currency_label(inp)
    cards = [("customers scored", f"{s.height:,}")]
    if has_values(s, "segment_id"):
        cards.append(("segments", f"{s['segment_id'].n_unique()}"))
    if has_values(s, "clv"):
        cards.append((f"total CLV ({cur})", f"{s['clv'].sum():,.0f}"))
        cards.append((f"median CLV ({cur})", f"{s['clv'].median():,.1f}"))
    if has_values(s, "churn_risk_band"):
        profit = inp.churn is not None and inp.churn.retention is not None
        label = "worth a retention offer (band high)" if profit else "customers at high churn risk"
        cards.append((label, f"{(s['churn_risk_band'] == 'high').sum():,}"))
    if has_values(s, "churn_probability"):
        cards.append(("expected to leave in the horizon", f"{s['churn_probability'].sum():,.0f}"))
    if has_values(s, "value_at_risk"):
        cards.append((f"value at risk ({cur})", f"{s['value_at_risk'].sum():,.0f}"))
    if has_values(s, "loyalty_score"):
        cards.append(("mean promoter probability", f"{s['loyalty_score'].mean():.0%}"))
    body = "".join(
        f"<div class='card'><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>"
        for k, v in cards
    )
    return f"<div class='cards'>{body}</div>"
