"""`crm-engine backtest`: did a committed run's forecasts come true, in data that came later."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from crm_engine.cli._app import (
    ConfigOpt,
    DataOpt,
    OptionalAsOfOpt,
    command,
    console,
    stage_config,
)
from crm_engine.io import DataError
from crm_engine.stage_reports import BacktestReport


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(report: BacktestReport) -> Table:
    """The backtest's headline aggregates as a table."""
    t = Table(title=escape(f"Backtest of run {report.run_id} (as of {report.as_of})"))
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("data before", report.checked_to.isoformat())
    c = report.churn
    if c is not None:
        t.add_row("churn horizon passed", f"{c.elapsed_days} of {c.horizon_days} days")
        t.add_row("churned / scored", f"{c.churned:,} / {c.customers:,}")
        t.add_row("churn ROC-AUC", _fmt(c.roc_auc, ".3f"))
        t.add_row("top-decile lift", _fmt(c.lift_top_decile, ".2f"))
        t.add_row("predicted / realised churn", f"{c.mean_predicted:.1%} / {c.realised_rate:.1%}")
        for row in c.by_band:
            t.add_row(
                f"band {row['churn_risk_band']}: predicted / realised",
                f"{row['mean_predicted']:.1%} / {row['realised_rate']:.1%}",
            )
    v = report.value
    if v is not None:
        t.add_row("CLV horizon passed", f"{v.elapsed_days} of {v.horizon_days} days")
        t.add_row("revenue MAE per customer", _fmt(v.mae, ",.2f"))
        for row in v.by_plan:
            t.add_row(f"revenue MAE, {row['plan_type']}", _fmt(row["mae"], ",.2f"))
        t.add_row("P(alive) ROC-AUC (bought again)", _fmt(v.p_alive_auc, ".3f"))
    for s in report.skipped:
        t.add_row(escape(f"skipped {s['run_id']}"), escape(s["reason"]))
    d = report.drift
    if d is not None:
        if d.compared:
            t.add_row("drift: columns compared", f"{len(d.psi):,}")
            worst = max(
                ((c, v) for c, v in d.psi.items() if c not in d.not_alerted),
                key=lambda cv: cv[1],
                default=None,
            )
            if worst is not None:
                t.add_row(escape(f"drift: largest PSI ({worst[0]})"), f"{worst[1]:.3f}")
            alerts = sum(a.level == "alert" for a in d.alerts)
            t.add_row("drift: alerts / warnings", f"{alerts} / {len(d.alerts) - alerts}")
        for note in d.notes:
            t.add_row("drift", escape(note))
    return t


def _share(c: Any) -> str:
    return "-" if c is None else f"{c.elapsed_share:.0%}"


def render_runs(report: BacktestReport) -> Table:
    """One row per earlier run checked, latest first: how much of its horizons passed and how its
    churn and value forecasts did."""
    t = Table(title=escape(f"Earlier runs checked with the data before {report.checked_to}"))
    for name in ("run", "as of", "churn passed", "ROC-AUC", "lift", "churn pred / real",
                 "CLV passed", "revenue MAE", "P(alive) AUC"):  # fmt: skip
        t.add_column(name, justify="left" if name == "run" else "right")
    for r in report.runs:
        c, v = r.churn, r.value
        t.add_row(
            escape(str(r.run_id)),
            str(r.as_of),
            _share(c),
            _fmt(c.roc_auc if c else None, ".3f"),
            _fmt(c.lift_top_decile if c else None, ".2f"),
            "-" if c is None else f"{c.mean_predicted:.1%} / {c.realised_rate:.1%}",
            _share(v),
            _fmt(v.mae if v else None, ",.2f"),
            _fmt(v.p_alive_auc if v else None, ".3f"),
        )
    return t


@command("backtest")
def backtest_command(
    out_dir: Annotated[
        Path,
        typer.Argument(
            help="a run output directory (runs/, current)", exists=True, file_okay=False
        ),
    ],
    data: DataOpt,
    as_of: OptionalAsOfOpt = None,
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            help="the committed run to check (default: every one before --as-of, latest "
            "first, at most monitoring.backtest_max_runs)",
        ),
    ] = None,
    config: ConfigOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the whole backtest as JSON (aggregates only)")
    ] = False,
    drift: Annotated[
        bool,
        typer.Option(
            "--drift/--no-drift",
            help="also compare the data with the distributions the run recorded: rows per table, "
            "new and vanished values, PSI of every profile feature (builds the profile at "
            "--as-of, as a run does)",
        ),
    ] = True,
) -> None:
    """Check the committed runs' churn and value forecasts against data that came later (every
    run before --as-of, or --run), and what moved in the data since the latest of them (drift,
    input side: no scores are computed).

    Reads the data as a run would (validated, rows from --as-of on ignored) and the committed
    runs of OUT_DIR; runs no pipeline and writes nothing. With more than one run checked, a table
    of them all comes first, then the latest's details. Drift alerts and warnings are one line
    each after the tables.
    """
    from pipelines.backtest import backtest_history, run_features_config, select_runs
    from pipelines.drift import backtest_drift
    from pipelines.inputs import prepare_inputs

    cfg = stage_config(config, data, as_of)
    when, _, tables = prepare_inputs(cfg)
    id_dtype = tables["customers"].collect_schema()["customer_id"]
    chosen, skipped = select_runs(
        out_dir, when, id_dtype, cfg.monitoring.backtest_max_runs, run_id=run
    )
    if not chosen:
        raise DataError(
            f"{out_dir}: no committed run before {when} that can be checked"
            + (f" ({len(skipped)} skipped, see the warnings)" if skipped else "")
        )
    report = backtest_history(chosen, tables, when, skipped)
    if drift:
        features_cfg = run_features_config(chosen[0], cfg.features)
        moved = backtest_drift(chosen[0], tables, when, features_cfg, cfg.monitoring)
        report = dataclasses.replace(report, drift=moved)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        if len(report.runs) > 1:
            console.print(render_runs(report))
        console.print(render(report))
        for line in report.drift.lines() if report.drift is not None else []:
            console.print(escape(line), soft_wrap=True, highlight=False)
