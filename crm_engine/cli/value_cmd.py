"""`crm-engine value`: customer lifetime value, P(alive), tiers and lifecycle stages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from crm_engine.cli._app import DataOpt, OptionalAsOfOpt, command, console, run_named, stage_config
from crm_engine.stage_reports import ValuationReport

ModelName = Literal["bgnbd", "mbgnbd", "pareto", "auto"]


@command("value")
def value_command(
    data: DataOpt,
    out: Annotated[
        Path,
        typer.Option("--out", help="values Parquet file to write; valuation.json goes beside it"),
    ],
    as_of: OptionalAsOfOpt = None,
    model: Annotated[
        ModelName | None,
        typer.Option(
            "--model", help="purchase model; auto = lowest holdout MAE (default: valuation.model)"
        ),
    ] = None,
    holdout_days: Annotated[
        int | None,
        typer.Option(
            "--holdout-days",
            min=0,
            help="holdout window in days, 0 = none (default: valuation.holdout_days)",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="pipeline.toml (\\[valuation] section)", exists=True, dir_okay=False
        ),
    ] = None,
) -> None:
    """Fit BG/NBD-family + Gamma-Gamma models and write one value row per customer."""
    from pipelines.outputs import values_files

    overrides = {"valuation.model": model, "valuation.holdout_days": holdout_days}
    cfg = stage_config(config, data, as_of, overrides)
    result, seconds = run_named(cfg, "value", values_files(out), tracking=False)
    rep: ValuationReport = result.reports["valuation"]
    table = Table(title=f"valuation as of {result.as_of} ({rep.model})", show_edge=False)
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("customers scored", f"{result.summary['rows']:,}")
    table.add_row(
        "fitted on",
        f"{rep.n_customers_fitted:,} customers, {rep.n_distinct_triples:,} distinct triples",
    )
    table.add_row(
        "purchases per day E[lambda]", f"{rep.population_rates_per_day['purchase_rate']:.4f}"
    )
    table.add_row("mean P(alive)", f"{rep.mean_p_alive:.3f}")
    table.add_row(f"total CLV ({rep.horizon_days} d)", f"{rep.total_clv:,.0f}")
    corr = rep.spend.frequency_monetary_corr
    table.add_row("spend/frequency corr", "n/a" if corr is None else f"{corr:+.3f}")
    hold = rep.holdout
    if hold is not None:
        for name, m in hold.metrics.items():
            text = (
                "failed"
                if m is None
                else (
                    f"MAE {m['mae']:.3f}, predicted {m['total_predicted']:,.0f} "
                    f"vs actual {m['total_actual']:,.0f}"
                )
            )
            table.add_row(f"holdout {name} ({hold.holdout_days} d)", text)
    for tier, n in rep.tier_counts.items():
        table.add_row(f"tier {tier}", f"{n:,}")
    for stage, n in rep.lifecycle_counts.items():
        table.add_row(f"stage {stage}", f"{n:,}")
    console.print(table)
    console.print(
        f"wrote {out} and {', '.join(result.summary['files'][1:])} ({seconds:.1f} s)",
        highlight=False,
    )
