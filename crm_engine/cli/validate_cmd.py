"""`crm-engine validate`: check a data directory against the input contract."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from crm_engine.cli._app import ConfigOpt, command, console, err_console
from crm_engine.cli.run_cmd import Backend
from crm_engine.config import load_config
from crm_engine.contracts import INPUTS_CONTRACT, inputs_contract_rows
from crm_engine.io import DataError
from crm_engine.validation import Problem, ValidationReport, validate


def render_report(report: ValidationReport) -> Table:
    """One row per contract table: file, rows and how many errors and warnings it has."""
    table = Table(title=escape(f"Input validation: {report.data_dir}"))
    table.add_column("table")
    table.add_column("file")
    table.add_column("rows", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("warnings", justify="right")
    for t in report.tables:
        errs = sum(1 for p in report.errors if p.table == t.name)
        warns = sum(1 for p in report.warnings if p.table == t.name)
        table.add_row(
            t.name + ("" if t.required else " (optional)"),
            escape(t.file) if t.file else "[red]missing[/]",
            "-" if t.rows is None else f"{t.rows:,}",
            f"[red]{errs}[/]" if errs else "0",
            f"[yellow]{warns}[/]" if warns else "0",
        )
    return table


def print_problems(report: ValidationReport) -> None:
    """Every problem on its own line: severity, table, file, column, message, rows, examples."""
    for p in report.problems:
        colour = "red" if p.severity == "error" else "yellow"
        line = f"[{colour}]{p.severity}[/] {escape(str(p))}"
        console.print(line, highlight=False, soft_wrap=True)


def _about_directory(report: ValidationReport, problem: Problem) -> str:
    """A problem of the directory as a whole, naming the directory once."""
    where = str(report.data_dir)
    return problem.message if where in problem.message else f"{where}: {problem.message}"


def render_contract() -> Table:
    """The input contract: every table's columns, types, nulls and declared ranges."""
    table = Table(title=f"Input contract {INPUTS_CONTRACT}")
    for name in ("table", "column", "type", "null?", "holds"):
        table.add_column(name)
    for row in inputs_contract_rows():
        table.add_row(*(escape(cell) for cell in row))
    return table


@command("validate")
def validate_command(
    data_dir: Annotated[
        Path | None,
        typer.Argument(
            help="directory with the input tables", exists=True, file_okay=False, dir_okay=True
        ),
    ] = None,
    as_of: Annotated[
        dt.datetime | None,
        typer.Option("--as-of", formats=["%Y-%m-%d"], help="count rows dated on/after this day"),
    ] = None,
    config: ConfigOpt = None,
    contract: Annotated[
        bool,
        typer.Option("--contract", help="print the input contract (columns, ranges) and stop"),
    ] = False,
    backend: Annotated[
        Backend | None,
        typer.Option(
            "--backend",
            help="where the tables are read and checked: local (Polars) or spark (Apache "
            "Spark's executors, engine.spark settings); default engine.backend",
        ),
    ] = None,
) -> None:
    """Validate the input tables: every table, its rows and every problem (exit 1 on errors).

    With ``--config``, its ``[data]`` limits apply (``max_text_bytes``, ``timezone``).
    """
    if contract:
        console.print(render_contract())
        return
    if data_dir is None:
        raise typer.BadParameter("give DATA_DIR (or --contract)", param_hint="DATA_DIR")
    from pipelines.inputs import backend_session, validation_reader

    cfg = load_config(config, {"engine.backend": backend.value if backend else None})
    with backend_session(cfg) as session:
        report = validate(
            data_dir,
            as_of.date() if as_of else None,
            cfg.data.max_text_bytes,
            timezone=cfg.data.timezone,
            reader=validation_reader(session),
        )
    if not report.tables:  # the directory itself could not be read: no table to show
        raise DataError("; ".join(_about_directory(report, e) for e in report.errors))
    console.print(render_report(report))
    print_problems(report)
    if report.errors:
        err_console.print(
            f"[bold red]error:[/] {len(report.errors)} data error(s); first: "
            f"{escape(str(report.errors[0]))}",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    console.print(f"[green]valid[/] ({len(report.warnings)} warning(s))")
