"""What they are worth: CLV, value tiers, how value is modelled and whether it holds up."""

from __future__ import annotations

import html
import math
from pathlib import Path

import polars as pl

from crm_engine.parts import count_rows, group_sums
from crm_engine.report.charts import bar_chart, figure, histogram, png_file_to_img
from crm_engine.report.formatting import compact, facts_table, html_table, sig
from crm_engine.report.inputs import ReportInputs, currency_label
from crm_engine.report.section import Section
from crm_engine.report.views import TIER_ORDER, rank
from crm_engine.stage_reports import ValuationReport

CONTRACT_LABELS = {"sbg": "the contract model (sbg)", "hazard": "their own monthly hazard (hazard)"}
"""The postpaid value models in words (``value_model`` names)."""


def body(inp: ReportInputs) -> str:
    """What they are worth: CLV, tiers, the value models and their holdout."""
    s, cur = inp.parts, currency_label(inp)
    parts: list[str] = []
    caption = "Customer lifetime value over the horizon (discounted margin), log scale"
    (zero,) = count_rows(s, pl.col("clv") <= 0.01)
    if zero:
        caption += f"; the {zero:,} customers worth 0.01 or less are the bar at the left edge"
    grid = [figure(histogram(s, "clv", "CLV distribution", f"CLV ({cur})", log=True), caption)]
    if inp.has("value_tier"):
        tiers = group_sums(s, [pl.col("value_tier")], [pl.col("clv")]).sort(
            rank("value_tier", TIER_ORDER)
        )
        grid.append(
            figure(
                bar_chart(
                    tiers["value_tier"].to_list(),
                    tiers["clv"].to_list(),
                    "Total CLV by value tier",
                    f"total CLV ({cur})",
                    "value tier",
                    "#b279a2",
                ),
                "Value tiers: "
                + ", ".join(
                    f"{t} {n:,}" for t, n in zip(tiers["value_tier"], tiers["n"], strict=True)
                )
                + " customers",
            )
        )
    holdout = inp.images.get("valuation_holdout.png")
    if holdout is not None and Path(holdout).is_file():
        grid.append(
            figure(
                png_file_to_img(holdout, "CLV holdout"),
                "Holdout: predicted vs actual cumulative repeat purchases",
            )
        )
    parts.append(f"<div class='grid'>{''.join(grid)}</div>")
    if inp.valuation:
        parts.append(
            "<h3>How the value is modelled</h3>" + facts_table(_valuation_facts(inp.valuation, cur))
        )
        parts.append(_revenue_holdout(inp.valuation, cur))
        parts.append(_contract_ends(inp.valuation, cur))
    return "".join(parts)


def _contract_ends(v: ValuationReport, cur: str) -> str:
    """Postpaid minimum terms ending month by month: when the renewals come, and the value
    they put in play (the churn hazard rises as a term ends)."""
    if not v.contract_ends:
        return ""
    months = [str(r["month"]) for r in v.contract_ends]
    customers = [int(r["customers"]) for r in v.contract_ends]
    clv = sum(float(r["clv"]) for r in v.contract_ends)
    first = sum(customers[:3])
    chart = bar_chart(
        months,
        [float(c) for c in customers],
        "Contract ends coming up",
        "postpaid customers whose minimum term ends",
        "month",
        "#4c78a8",
    )
    caption = (
        f"{sum(customers):,} postpaid customers' minimum terms end in the next "
        f"{len(months)} months ({first:,} in the first three), holding a CLV of "
        f"{compact(clv)} {cur}: postpaid customers leave most often as their term ends"
    )
    return f"<h3>Contract ends coming up</h3><div class='grid'>{figure(chart, caption)}</div>"


def _revenue_holdout(v: ValuationReport, cur: str) -> str:
    """What the value models said a year ago against the revenue that came in, per plan."""
    r = v.revenue_holdout
    if r is None:
        if v.revenue_holdout_error:
            return (
                f"<p class='muted'>No revenue holdout: {html.escape(v.revenue_holdout_error)}</p>"
            )
        return ""
    rows = pl.DataFrame(
        r.rows,
        schema={
            "plan_type": pl.String,
            "model": pl.String,
            "customers": pl.Int64,
            "mae": pl.Float64,
            "mean_predicted": pl.Float64,
            "mean_actual": pl.Float64,
        },
    ).with_columns(
        pl.col("model").replace({"sbg": "contract (sbg)", "hazard": "own hazard (hazard)"}),
        (pl.col("mae") / pl.col("mean_actual")).alias("relative"),
    )
    contract = v.retention_model or ("sbg" if v.retention is not None else "")
    kept = CONTRACT_LABELS.get(contract, v.model)
    text = (
        f"<h3>Does the value hold up?</h3><p>Every model refitted {r.days} days earlier (at "
        f"{r.cut}) and its revenue forecast for the customers there compared with what they "
        f"really paid up to as_of (no discount or margin). Postpaid customers are valued by "
        f"<b>{html.escape(kept)}</b>.</p>"
    )
    shown = ["plan_type", "model", "customers", "mean_predicted", "mean_actual", "mae", "relative"]
    return text + html_table(rows.select(shown), cur)


def _valuation_facts(v: ValuationReport, cur: str) -> list[tuple[str, str]]:
    """The valuation summary in an analyst's words: model, what its parameters mean, spend."""
    facts: list[tuple[str, str]] = [
        (
            "Purchase model",
            f"{v.model} ("
            + ", ".join(f"{k}={sig(x)}" for k, x in v.params.items())
            + "; time in days)",
        )
    ]
    rates = v.population_rates_per_day
    if rates.get("purchase_rate"):
        facts.append(
            ("A typical active customer buys", f"every {1 / rates['purchase_rate']:.0f} days")
        )
    if "dropout" in rates:
        facts.append(("Chance of leaving after a purchase", f"{rates['dropout']:.2%}"))
    if v.retention is not None and v.retention_model == "hazard":
        r = v.retention
        facts.append(
            (
                "Postpaid customers: each one's own monthly hazard",
                f"{v.n_customers_contract:,} valued by their monthly bill x their own survival, "
                f"month by month (tenure, months to the term's end, bill, complaints, network "
                f"experience, ...), learnt from {int(r['n_person_months']):,} customer-months "
                f"of {int(r['n_customers']):,} postpaid customers ({int(r['n_churned']):,} "
                f"churned): leaving is {math.exp(r['contract_end_rise']):.1f} times as likely "
                f"(odds) as a term ends; mean 12-month retention {r['retention_12m']:.0%}",
            )
        )
    elif v.retention is not None:
        r = v.retention
        facts.append(
            (
                "Postpaid customers: contract retention (shifted-beta-geometric)",
                f"{v.n_customers_contract:,} valued by their monthly bill x the retention "
                f"curve fitted on {int(r['n_customers']):,} postpaid customers "
                f"({int(r['n_churned']):,} churned): mean monthly churn "
                f"{r['alpha'] / (r['alpha'] + r['beta']):.1%}, a new customer's 12-month "
                f"retention {r['retention_12m']:.0%}",
            )
        )
    facts.append(("Mean P(alive) at as_of", f"{v.mean_p_alive:.1%}"))
    facts.append((f"Mean spend per purchase ({cur})", sig(v.spend.population_mean)))
    corr = v.spend.frequency_monetary_corr
    if corr is not None:
        verdict = "independent enough" if abs(corr) <= 0.3 else "check the spend model"
        facts.append(("Frequency-spend correlation", f"{corr:+.2f} ({verdict})"))
    facts += [
        ("CLV horizon", f"{v.horizon_days:,} days"),
        ("Margin on revenue", f"{v.margin:.0%}"),
        ("Annual discount rate", f"{v.annual_discount_rate:.0%}"),
    ]
    return facts


SECTION = Section("value", "What they are worth", body, needs=("clv",))
