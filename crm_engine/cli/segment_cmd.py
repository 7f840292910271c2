"""`crm-engine segment`: spend levels, age bands and behavioural segments with stable ids."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from crm_engine.cli._app import DataOpt, OptionalAsOfOpt, app, console, err_console, user_errors
from crm_engine.config import load_config


@app.command("segment")
@user_errors
def segment_command(
    data: DataOpt,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="segments Parquet file to write; segment_profiles.parquet, "
            "segmentation_model.pkl and segmentation.json go beside it",
            dir_okay=False,
        ),
    ],
    as_of: OptionalAsOfOpt = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="pipeline.toml (\\[segmentation] section)", exists=True, dir_okay=False
        ),
    ] = None,
    previous: Annotated[
        Path | None,
        typer.Option(
            "--previous",
            help="last run's segmentation_model.pkl (keeps segment ids "
            "stable; default: the one beside --out, if any). Only load files this "
            "tool wrote",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="ignore any previous model: segment ids start at 0"),
    ] = False,
    k: Annotated[
        str | None,
        typer.Option("--k", help="number of segments or 'auto' (default: segmentation.k)"),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="random seed (default: segmentation.seed)")
    ] = None,
) -> None:
    """Cluster customers into readable behavioural segments and write one row per customer."""
    from pipelines.profile_job import resolve_as_of
    from pipelines.segment_job import default_previous, segment_job

    k_value: int | str | None = k
    if k is not None and k != "auto":
        try:
            k_value = int(k)
        except ValueError:
            err_console.print(
                f"[bold red]error:[/] --k {k!r} should be an integer or 'auto'", highlight=False
            )
            sys.exit(1)
    cfg = load_config(config, {"segmentation.k": k_value, "segmentation.seed": seed})
    as_of_date = resolve_as_of(data, as_of)
    prev = None if fresh else (previous or default_previous(out))
    start = time.perf_counter()
    try:
        job = segment_job(data, as_of_date, out, cfg, previous=prev)
    except ValueError as e:  # a configured feature missing, too few customers for k, ...
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
    seconds = time.perf_counter() - start
    rep = job.result.report

    chosen = next((s for s in rep["scores"] if s["chosen"]), {})
    sil = chosen.get("silhouette")
    title = (
        f"{rep['n_customers']:,} customers as of {as_of_date}: k={rep['k']} "
        f"({rep['algorithm']}, silhouette {'n/a' if sil is None else f'{sil:.3f}'})"
    )
    table = Table(title=title, show_edge=False)
    table.add_column("id", justify="right")
    table.add_column("segment")
    table.add_column("customers", justify="right")
    table.add_column("share", justify="right")
    table.add_column("what sets it apart")
    for row in job.result.profiles.iter_rows(named=True):
        table.add_row(
            str(row["segment_id"]),
            row["segment_name"],
            f"{row['size']:,}",
            f"{row['share']:.1%}",
            row["distinguishing"],
        )
    console.print(table)
    if rep.get("aligned"):
        console.print(
            f"ids aligned with {job.previous_path}: {rep['same_segment_share']:.1%} of customers "
            f"kept their segment, {rep['fresh_ids']} new segment(s); migration matrix in "
            f"{job.migration_path}",
            highlight=False,
        )
    console.print(
        f"wrote {job.segments_path}, {job.profiles_path.name}, "
        f"{job.model_path.name} in {seconds:.1f} s",
        highlight=False,
    )
