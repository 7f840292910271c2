"""Since the last run: did the earlier committed runs' forecasts come true, and what moved since."""

from __future__ import annotations

import html

import polars as pl

from crm_engine.report.charts import figure, predicted_vs_realised_chart, psi_chart
from crm_engine.report.formatting import facts_table, html_table, money
from crm_engine.report.inputs import ReportInputs, currency_label
from crm_engine.report.section import Section
from crm_engine.report.views import TIER_ORDER
from crm_engine.stage_reports import BacktestReport, ChurnBacktest, DriftReport, ValueBacktest


def _passed(days: int, share: float) -> str:
    if share >= 1.0:
        return f"all of its {days:,}-day horizon has passed"
    return f"{share:.0%} of its horizon has passed ({days:,} days so far)"


def _churn_facts(c: ChurnBacktest) -> list[tuple[str, str]]:
    facts = [
        ("Churn: how much has passed", _passed(c.elapsed_days, c.elapsed_share)),
        (
            "Who left of the customers scored",
            f"{c.churned:,} of {c.customers:,} ({c.realised_rate:.1%}); predicted "
            f"{c.mean_predicted:.1%}",
        ),
        ("ROC-AUC on what happened", f"{c.roc_auc:.3f}"),
        (
            "Lift of the top decile",
            f"{c.lift_top_decile:.2f} ({c.capture_top_decile:.0%} of the leavers)",
        ),
    ]
    high = next((r for r in c.by_band if r["churn_risk_band"] == "high"), None)
    if high is not None:
        facts.append(
            (
                "The high-risk band",
                f"{high['churned']:,} of {high['customers']:,} left ({high['realised_rate']:.1%};"
                f" predicted {high['mean_predicted']:.1%})",
            )
        )
    if c.save_list is not None and c.save_list["customers"]:
        s = c.save_list
        facts.append(("The save-first list", f"{s['churned']:,} of {s['customers']:,} left"))
    return facts


def _value_facts(v: ValueBacktest, cur: str) -> list[tuple[str, str]]:
    return [
        ("Value: how much has passed", _passed(v.elapsed_days, v.elapsed_share)),
        (
            f"Revenue per customer ({cur})",
            f"expected {money(v.mean_predicted)}, realised {money(v.mean_realised)}, mean "
            f"absolute error {money(v.mae)}",
        ),
        (
            "P(alive) against who bought again",
            f"ROC-AUC {v.p_alive_auc:.3f} ({v.bought_rate:.0%} bought again)",
        ),
    ]


def _errors_table(v: ValueBacktest, cur: str) -> str:
    schema = {
        "group": pl.String,
        "customers": pl.Int64,
        "mean_predicted": pl.Float64,
        "mean_realised": pl.Float64,
        "mae": pl.Float64,
    }
    order = {t: i for i, t in enumerate(TIER_ORDER)}
    tiers = sorted(v.by_tier, key=lambda r: order.get(r["value_tier"], len(order)))
    rows = [{"group": f"plan: {r['plan_type']}", **r} for r in v.by_plan]
    rows += [{"group": f"tier: {r['value_tier']}", **r} for r in tiers]
    frame = pl.DataFrame([{k: r[k] for k in schema} for r in rows], schema=schema)
    return html_table(
        frame,
        cur,
        titles={
            "group": "Customers",
            "customers": "Count",
            "mean_predicted": f"Expected revenue per customer ({cur})",
            "mean_realised": f"Realised revenue per customer ({cur})",
        },
    )


def _pct(x: float | None) -> str:
    return "–" if x is None or x != x else f"{x:.1%}"


def _num(x: float | None, spec: str) -> str:
    return "–" if x is None or x != x else format(x, spec)


def _cells_table(head: list[str], rows: list[list[str]]) -> str:
    """A table of cells already formatted (HTML); every column but the first is a number."""
    th = "".join(f"<th{' class=n' if i else ''}>{html.escape(t)}</th>" for i, t in enumerate(head))
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i else ''}>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return (
        f"<div class='tablewrap'><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody>"
        "</table></div>"
    )


def _runs_tables(b: BacktestReport, cur: str) -> str:
    """One row per earlier run checked (latest first): churn, then value, each with the share of
    its horizon that passed."""
    churn_rows, value_rows = [], []
    for r in b.runs:
        run = f"{r.as_of}<br><code>{html.escape(str(r.run_id))}</code>"
        c, v = r.churn, r.value
        if c is not None:
            high = next((x for x in c.by_band if x["churn_risk_band"] == "high"), None)
            saved = c.save_list
            churn_rows.append(
                [
                    run,
                    f"{_pct(c.elapsed_share)} ({c.elapsed_days:,} d)",
                    _pct(c.mean_predicted),
                    _pct(c.realised_rate),
                    _num(c.roc_auc, ".3f"),
                    _num(c.lift_top_decile, ".2f"),
                    "–"
                    if high is None
                    else f"{_pct(high['realised_rate'])} (pred. {_pct(high['mean_predicted'])})",
                    "–"
                    if not saved or not saved["customers"]
                    else f"{saved['churned']:,} of {saved['customers']:,}",
                ]
            )
        if v is not None:
            value_rows.append(
                [
                    run,
                    f"{_pct(v.elapsed_share)} ({v.elapsed_days:,} d)",
                    money(v.mean_predicted),
                    money(v.mean_realised),
                    money(v.mae),
                    _num(v.p_alive_auc, ".3f"),
                    _pct(v.bought_rate),
                ]
            )
    parts = []
    if churn_rows:
        head = ["Run as of", "Churn horizon passed", "Predicted churn", "Realised churn",
                "ROC-AUC", "Top-decile lift", "High band left", "Save list left"]  # fmt: skip
        parts.append(_cells_table(head, churn_rows))
    if value_rows:
        head = ["Run as of", "CLV horizon passed", f"Expected revenue per customer ({cur})",
                f"Realised ({cur})", f"Mean absolute error ({cur})", "P(alive) ROC-AUC",
                "Bought again"]  # fmt: skip
        parts.append(_cells_table(head, value_rows))
    return "".join(parts)


def _history(b: BacktestReport, cur: str) -> str:
    """Every earlier run checked: a table, and predicted against realised churn by run."""
    parts = [
        f"<h3>Every earlier run checked ({len(b.runs)})</h3><p>Each earlier committed run's "
        f"forecasts against the data before {b.checked_to.isoformat()}, latest first. Where a "
        "horizon has only partly passed, the realised churn and revenue are those of the part "
        "that passed (a lower bound of the horizon's churn).</p>",
        _runs_tables(b, cur),
    ]
    churned = [r for r in reversed(b.runs) if r.churn is not None]
    if len(churned) > 1:
        rows = [
            {
                "run": f"{r.as_of}\n{r.churn.elapsed_share:.0%} passed",  # type: ignore[union-attr]
                "mean_predicted": r.churn.mean_predicted,  # type: ignore[union-attr]
                "realised_rate": r.churn.realised_rate,  # type: ignore[union-attr]
            }
            for r in churned
        ]
        chart = predicted_vs_realised_chart(
            rows, "run", "Did each run's churn forecast come true?", "run as of"
        )
        parts.append(
            figure(
                chart,
                "Mean predicted churn probability against the share who left since, for each "
                "earlier run (oldest first; below the bars, how much of its horizon passed)",
            )
        )
    return "".join(parts)


def _drift(d: DriftReport) -> str:
    """What moved since the previous run: the largest PSIs, alerts, categories, rows, moves."""
    parts = [
        f"<h3>What moved since the run of {d.previous_as_of}</h3><p>Population stability "
        f"index (PSI) of each model feature and score column against the run "
        f"<code>{html.escape(str(d.previous_run_id))}</code>: below {d.psi_warn:g} stable, from "
        f"{d.psi_warn:g} worth a look, from {d.psi_alert:g} an alert.</p>"
    ]
    charted = {k: v for k, v in d.psi.items() if k not in d.not_alerted}
    if charted:
        caption = (
            "The largest PSIs of this run's features and scores on the last run's bins "
            "(dashed: the warning and alert thresholds)"
        )
        if d.not_alerted:
            caption += (
                f"; {', '.join(d.not_alerted)} grow with every month a customer stays and are "
                "recorded, not shown"
            )
        flagged = {
            a.column: "region "
            + ", ".join(f"{r} {d.psi_by_region[a.column][r]:.2f}" for r in a.regions)
            for a in d.alerts
            if a.regions and a.column in charted
        }
        if flagged:
            caption += "; red with a region: that region's own PSI passed the alert threshold"
        chart = psi_chart(charted, d.psi_warn, d.psi_alert, flagged=flagged)
        parts.append(figure(chart, caption))
    if d.alerts:
        items = "".join(
            f"<li><b>{a.level}</b>: {html.escape(a.message)}</li>"
            for a in sorted(d.alerts, key=lambda a: (a.level != "alert", -(a.psi or 0.0)))
        )
        parts.append(f"<p class='warn'>Drift found:</p><ul>{items}</ul>")
    else:
        parts.append("<p>No column drifted past the warning threshold.</p>")
    facts: list[tuple[str, str]] = []
    for name, m in d.moved.items():
        facts.append(
            (
                f"Customers who changed {name}",
                f"{int(m['moved']):,} of {int(m['customers']):,} ({m['share']:.1%})",
            )
        )
    for name, change in d.categories.items():
        new = ", ".join(f"{k} ({n:,})" for k, n in change["new"].items()) or "none"
        gone = ", ".join(f"{k} (had {n:,})" for k, n in change["vanished"].items()) or "none"
        facts.append((f"{name}: values", f"new: {new}; vanished: {gone}"))
    for table, r in d.rows.items():
        before, now = r.get("previous"), r.get("current")
        shown = f"{before:,}" if before is not None else "absent"
        shown += " → " + (f"{now:,}" if now is not None else "absent")
        if before and now is not None:
            shown += f" ({now / before - 1:+.1%})"
        facts.append((f"Rows of {table}", shown))
    facts += [("Note", n) for n in d.notes]
    parts.append(facts_table(facts))
    return "".join(parts)


def body(inp: ReportInputs) -> str:
    """The earlier committed runs: the latest one's forecasts against what happened (then every
    run checked, one row each), and what moved under the models since the last one."""
    drift = _drift(inp.drift) if inp.drift is not None and inp.drift.compared else ""
    if inp.backtest is None:
        return drift
    return _backtest(inp) + drift


def _backtest(inp: ReportInputs) -> str:
    b: BacktestReport = inp.backtest  # type: ignore[assignment]
    cur = currency_label(inp)
    skipped = "".join(
        f"<li>run <code>{html.escape(s['run_id'])}</code>: {html.escape(s['reason'])}</li>"
        for s in b.skipped
    )
    note = f"<p class='warn'>Earlier runs passed over:</p><ul>{skipped}</ul>" if skipped else ""
    if b.run_id is None or b.as_of is None:
        return note + "<p class='muted'>No earlier committed run could be checked.</p>"
    parts = [
        f"<p>What the run of <b>{b.as_of.isoformat()}</b> (<code>{html.escape(b.run_id)}"
        f"</code>) said, against the data before {b.checked_to.isoformat()}.</p>",
        note,
    ]
    facts: list[tuple[str, str]] = []
    if b.churn is not None:
        facts += _churn_facts(b.churn)
    if b.value is not None:
        facts += _value_facts(b.value, cur)
    if b.not_found:
        facts.append(("Scored then, missing from the customers table now", f"{b.not_found:,}"))
    parts.append(facts_table(facts))
    if b.churn is not None and b.churn.by_decile:
        caption = (
            "Predicted churn against realised churn by decile of the earlier run's churn "
            "probability (1 = the lowest tenth)"
        )
        if b.churn.elapsed_share < 1.0:
            caption += "; the horizon has only partly passed, so realised rates are still low"
        parts.append(
            figure(
                predicted_vs_realised_chart(
                    b.churn.by_decile, "decile", "Did the churn scores come true?", "decile"
                ),
                caption,
            )
        )
    if b.value is not None:
        parts.append(
            "<h3>Revenue against the forecast</h3><p>Expected revenue over the elapsed part of "
            f"the horizon: {html.escape(b.value.basis)}.</p>" + _errors_table(b.value, cur)
        )
    if len(b.runs) > 1:
        parts.append(_history(b, cur))
    return "".join(parts)


SECTION = Section(
    "since",
    "Since the last run",
    body,
    ran=lambda inp: inp.backtest is not None or (inp.drift is not None and inp.drift.compared),
    not_run="No earlier committed run in this output directory to check yet.",
)
