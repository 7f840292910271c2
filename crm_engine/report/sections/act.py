"""Where to act: the value x risk matrix, who is worth an offer and whom to save first."""

from __future__ import annotations

import html

import polars as pl

from crm_engine.parts import count_rows
from crm_engine.report.formatting import html_table, label_of, money, title_case
from crm_engine.report.inputs import ReportInputs, currency_label
from crm_engine.report.section import Section
from crm_engine.report.sections.network import network_section
from crm_engine.report.sections.worth_a_call import worth_a_call_section
from crm_engine.report.views import (
    NOT_TO_SAVE_BANDS,
    NOT_TO_SAVE_STAGES,
    save_first,
    save_first_rank,
    value_risk_matrix,
)


def _matrix_html(matrix: pl.DataFrame, cur: str) -> str:
    """The value tier x churn risk band matrix as an HTML table with totals."""
    tiers = list(dict.fromkeys(matrix["value_tier"]))
    bands = list(dict.fromkeys(matrix["churn_risk_band"]))
    cell = {(r["value_tier"], r["churn_risk_band"]): r for r in matrix.iter_rows(named=True)}
    top = max(float(matrix["value_at_risk"].max() or 0.0), 1e-9)

    def td(customers: int, var: float, shade: bool = True) -> str:
        alpha = 0.08 + 0.55 * var / top if shade and var > 0 else 0.0
        style = f" style='background:rgba(228,87,86,{alpha:.2f})'" if alpha else ""
        return (
            f"<td{style}><b>{customers:,}</b><span>{money(var)} {html.escape(cur)} "
            "at risk</span></td>"
        )

    head = "".join(
        f"<th scope='col' class=n>{html.escape(title_case(label_of(b)))}</th>" for b in bands
    )
    rows = []
    for t in tiers:
        cells = "".join(td(cell[(t, b)]["customers"], cell[(t, b)]["value_at_risk"]) for b in bands)
        in_tier = matrix.filter(pl.col("value_tier") == t)
        total = td(int(in_tier["customers"].sum()), float(in_tier["value_at_risk"].sum()), False)
        rows.append(
            f"<tr><th scope='row'>{html.escape(title_case(label_of(t)))}</th>{cells}{total}</tr>"
        )
    totals = "".join(
        td(
            int(matrix.filter(pl.col("churn_risk_band") == b)["customers"].sum()),
            float(matrix.filter(pl.col("churn_risk_band") == b)["value_at_risk"].sum()),
            False,
        )
        for b in bands
    )
    grand = td(int(matrix["customers"].sum()), float(matrix["value_at_risk"].sum()), False)
    rows.append(f"<tr><th scope='row'>All tiers</th>{totals}{grand}</tr>")
    return (
        "<div class='tablewrap'><table class='matrix' id='value-risk-matrix'>"
        f"<caption class='muted'>Customers and value at risk ({html.escape(cur)}) by value tier "
        "and churn risk; darker cells hold more value at risk.</caption>"
        f"<thead><tr><th>Value tier</th>{head}<th scope='col' class=n>All bands</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def body(inp: ReportInputs) -> str:
    """Where to act: the value x risk matrix, then the customers to call first."""
    s, cur = inp.parts, currency_label(inp)
    parts = [
        "<p>Value tier (by CLV) against churn risk over the horizon. Retention budget goes "
        "first where a valuable customer is likely to leave: the top left.</p>"
    ]
    parts.append(_matrix_html(value_risk_matrix(s), cur))
    parts.append(worth_a_call_section(inp))
    parts.append(network_section(inp))
    if not inp.customer_rows:
        parts.append(
            "<p class='muted'>The list of customers to contact first is written beside the "
            "report in the run output, not here: this copy holds no customer rows.</p>"
        )
        return "".join(parts)
    first = save_first(s, inp.save_first_rows)
    dropped = [
        c
        for c, values in (
            ("lifecycle_stage", NOT_TO_SAVE_STAGES),
            ("churn_risk_band", NOT_TO_SAVE_BANDS),
        )
        if inp.has(c) and count_rows(s, pl.col(c).is_in(list(values)))[0]
    ]
    if save_first_rank(s) == "retention_profit":
        parts.append("<h3 id='save-first'>Save first: most profitable to contact</h3>")
        note = (
            "Customers worth a retention offer (band high), ranked by its expected profit "
            "(see above)"
        )
    else:
        parts.append("<h3 id='save-first'>Save first: highest value at risk</h3>")
        note = "Customers ranked by value at risk (churn probability x CLV)"
    if dropped:
        note += "; dormant and lost customers are left out (win them back, not keep them)"
    if inp.save_first_file:
        note += (
            f". The top {first.height:,} with segment, plan, region and reasons: "
            f"<a class='download' href='{html.escape(inp.save_first_file)}' download>"
            f"{html.escape(inp.save_first_file)}</a>"
        )
    parts.append(f"<p>{note}.</p>")
    shown = [
        c
        for c in (
            "customer_id",
            "segment_name",
            "value_tier",
            "lifecycle_stage",
            "clv",
            "churn_probability",
            "value_at_risk",
            "retention_profit",
            "churn_reasons",
            "churn_drivers",
        )
        if c in first.columns
    ]
    more = f"The first 15 of {first.height:,}"
    if inp.save_first_file:
        more += f"; all of them, with plan and region, are in {html.escape(inp.save_first_file)}"
    parts.append(html_table(first.select(shown), cur, max_rows=15, more=more + "."))
    return "".join(parts)


SECTION = Section(
    "act",
    "Where to act",
    body,
    needs=("value_at_risk", "value_tier", "churn_risk_band"),
    not_run="Needs the valuation and churn stages: valuation or churn stage not run.",
    private=True,
)
