"""`crm-engine generate`: write a synthetic operator's input tables and ground truth."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crm_engine.cli._app import command, console, err_console


@command("generate")
def generate_command(
    out: Annotated[
        Path, typer.Option("--out", help="output directory (replaced atomically)", file_okay=False)
    ],
    customers: Annotated[int, typer.Option("--customers", min=1, help="number of customers")] = (
        20_000
    ),
    months: Annotated[int, typer.Option("--months", min=1, max=240, help="months of history")] = 24,
    seed: Annotated[int, typer.Option("--seed", help="random seed (same seed, same bytes)")] = 0,
    start: Annotated[
        datetime | None,
        typer.Option(
            "--start",
            formats=["%Y-%m-%d"],
            help="first day of the data, first of a month [default: 2023-01-01]",
        ),
    ] = None,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="customers per part file")
    ] = 100_000,
) -> None:
    """Generate synthetic input tables (and `_truth/`) for a mobile operator."""
    from crm_engine.generator import generate

    start_date = start.date() if start is not None else datetime(2023, 1, 1).date()
    if start_date.day != 1:
        err_console.print(
            f"[bold red]error:[/] --start {start_date} should be the first day of a month",
            highlight=False,
        )
        raise typer.Exit(1)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("simulating customers", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description="writing chunks")

        summary = generate(
            out,
            customers=customers,
            months=months,
            seed=seed,
            start=start_date,
            chunk_size=chunk_size,
            progress=progress,
        )
    table = Table(
        title=str(out),
        caption=f"{summary.start} .. {summary.end} (end excluded), {summary.elapsed_seconds:.1f} s",
    )
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in summary.rows.items():
        table.add_row(name, f"{n:,}")
    console.print(table)
