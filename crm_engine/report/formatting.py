"""Numbers, labels and tables as an analyst reads them."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import polars as pl

from crm_engine.contracts import LOST_BAND, score_values

_LABELS = {b: f"{b} risk" for b in score_values("churn_risk_band") if b != LOST_BAND}
"""The churn risk bands the model assigns, as read (``high`` -> ``high risk``)."""


def label_of(value: Any) -> str:
    """A category value as an analyst reads it (``at_risk`` -> ``at risk``, ``high`` -> ``high
    risk``)."""
    text = str(value)
    return _LABELS.get(text, text.replace("_", " "))


def title_case(text: str) -> str:
    """``text`` with its first letter upper case."""
    return text[:1].upper() + text[1:]


_COLUMNS: dict[str, tuple[str, str]] = {
    # name: (title, kind); {cur} is the currency
    "customer_id": ("Customer", "id"),
    "segment_id": ("Segment id", "id"),
    "segment_name": ("Segment", "text"),
    "previous_segment_id": ("Previous segment id", "id"),
    "previous_segment_name": ("Previous segment", "text"),
    "value_tier": ("Value tier", "label"),
    "lifecycle_stage": ("Lifecycle stage", "label"),
    "churn_risk_band": ("Churn risk", "label"),
    "plan_type": ("Plan", "label"),
    "region": ("Region", "text"),
    "clv": ("CLV ({cur})", "money"),
    "churn_probability": ("Churn probability", "pct"),
    "value_at_risk": ("Value at risk ({cur})", "money"),
    "network_value": ("Network value ({cur})", "money"),
    "value_at_risk_network": ("Value at risk through contacts ({cur})", "money"),
    "total_at_risk": ("Own + through contacts ({cur})", "money"),
    "model": ("Model", "text"),
    "mean_predicted": ("Predicted revenue per customer ({cur})", "money"),
    "mean_actual": ("Real revenue per customer ({cur})", "money"),
    "mae": ("Mean absolute error per customer ({cur})", "money"),
    "relative": ("Error / real revenue", "pct"),
    "churn_reasons": ("Why they may leave", "text"),
    "churn_drivers": ("Top churn drivers (model features)", "text"),
    "customers": ("Customers", "count"),
    "size": ("Customers", "count"),
    "share": ("Share of customers", "pct"),
    "share_of_previous": ("Share of the previous segment", "pct"),
    "group": ("Segment", "text"),
    **{c: (f"{title_case(c)}s", "pct") for c in score_values("loyalty_class")},
    "net": ("Net promoters (points)", "points"),
    "table": ("Table", "text"),
    "column": ("Column", "text"),
    "rows": ("Rows", "count"),
    "warning": ("Warning", "text"),
    "fact": ("", "text"),
    "value": ("", "text"),
}


def _dash() -> str:
    return '<span class="muted">–</span>'


def format_cell(v: Any, kind: str = "auto") -> str:
    """One cell: money without decimals above 100, probabilities and shares in %."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return _dash()
    if kind == "id":
        return html.escape(str(v))
    if kind == "label":
        return html.escape(label_of(v))
    if kind == "pct" and isinstance(v, int | float):
        return f"{float(v):.1%}"
    if kind == "money" and isinstance(v, int | float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}"
    if kind == "points" and isinstance(v, int | float):
        return f"{v:+.0f}"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, list):
        return html.escape(", ".join(str(x) for x in v))
    return html.escape(str(v))


def _column(name: str, cur: str) -> tuple[str, str]:
    title, kind = _COLUMNS.get(name, (title_case(name.replace("_", " ")), "auto"))
    return title.format(cur=cur), kind


def html_table(
    df: pl.DataFrame,
    cur: str,
    max_rows: int = 50,
    titles: dict[str, str] | None = None,
    more: str | None = None,
) -> str:
    """A table with readable titles (units in them) and formatted numbers.

    ``more`` replaces the note under a table cut at ``max_rows``.
    """
    specs = [_column(c, cur) for c in df.columns]
    if titles:
        specs = [(titles.get(c, t), k) for c, (t, k) in zip(df.columns, specs, strict=True)]
    numeric = [
        dtype.is_numeric() and kind != "id"
        for dtype, (_, kind) in zip(df.dtypes, specs, strict=True)
    ]
    head = "".join(
        f"<th{' class=n' if num else ''}>{html.escape(t)}</th>"
        for (t, _), num in zip(specs, numeric, strict=True)
    )
    rows = []
    for row in df.head(max_rows).iter_rows():
        cells = "".join(
            f"<td{' class=n' if num else ''}>{format_cell(v, kind)}</td>"
            for v, (_, kind), num in zip(row, specs, numeric, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    note = ""
    if df.height > max_rows:
        note = f"<p class='muted'>{more or f'First {max_rows:,} of {df.height:,} rows.'}</p>"
    return (
        f"<div class='tablewrap'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>{note}"
    )


def facts_table(rows: list[tuple[str, str]]) -> str:
    """Two-column table of already formatted facts (label, value)."""
    body = "".join(
        f"<tr><th scope='row'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
    )
    return f"<div class='tablewrap'><table><tbody>{body}</tbody></table></div>"


def money(v: float | None) -> str:
    """A money amount formatted as in tables, ``–`` when None."""
    return format_cell(v, "money") if v is not None else "–"


def sig(v: Any, digits: int = 4) -> str:
    """A number to ``digits`` significant digits; other values as text."""
    return f"{float(v):.{digits}g}" if isinstance(v, int | float) else str(v)


def raw_table(rows: list[tuple[str, Any]]) -> str:
    """Raw names and values, as logged to MLflow."""

    def value(v: Any) -> str:
        if isinstance(v, float):
            return "nan" if np.isnan(v) else f"{v:.6g}"
        return html.escape(str(v))

    body = "".join(
        f"<tr><td><code>{html.escape(k)}</code></td><td class=n>{value(v)}</td></tr>"
        for k, v in rows
    )
    return (
        "<div class='tablewrap'><table><thead><tr><th>name</th><th class=n>value</th></tr>"
        f"</thead><tbody>{body}</tbody></table></div>"
    )


def compact(x: float) -> str:
    """``1.2M``, ``400k``, ``9,500``: axis ticks and bar labels that do not run into each other."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:.3g}M"
    if abs(x) >= 1e4:
        return f"{x / 1e3:.3g}k"
    return f"{x:,.0f}"
