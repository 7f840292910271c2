"""`crm-engine segment`: spend levels, age bands and behavioural segments with stable ids."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from crm_engine.cli._app import DataOpt, OptionalAsOfOpt, command, console, run_named, stage_config
from crm_engine.config import ConfigError
from crm_engine.stage_reports import SegmentationReport


@command("segment")
def segment_command(
    data: DataOpt,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="segments Parquet file to write; segment_profiles.parquet, "
            "segmentation_model.skops and segmentation.json go beside it",
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
            help="last run's segmentation_model.skops (keeps segment ids "
            "stable; default: the one beside --out, if any)",
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
    import polars as pl

    from pipelines.outputs import segment_files
    from pipelines.stages import StageOptions

    k_value: int | str | None = k
    if k is not None and k != "auto":
        try:
            k_value = int(k)
        except ValueError:
            raise ConfigError(f"--k {k!r} should be an integer or 'auto'") from None
    cfg = stage_config(config, data, as_of, {"segmentation.k": k_value, "segmentation.seed": seed})
    options = StageOptions(previous_segmenter=False if fresh else previous)
    result, seconds = run_named(cfg, "segment", segment_files(out), options, tracking=False)
    rep: SegmentationReport = result.reports["segmentation"]
    profiles = pl.read_parquet(out.parent / "segment_profiles.parquet")

    sil = rep.chosen.silhouette if rep.chosen is not None else None
    title = (
        f"{rep.n_customers:,} customers as of {result.as_of}: k={rep.k} "
        f"({rep.algorithm}, silhouette {'n/a' if sil is None else f'{sil:.3f}'})"
    )
    table = Table(title=escape(title), show_edge=False)
    table.add_column("id", justify="right")
    table.add_column("segment")
    table.add_column("customers", justify="right")
    table.add_column("share", justify="right")
    table.add_column("what sets it apart")
    for row in profiles.iter_rows(named=True):
        table.add_row(
            str(row["segment_id"]),
            escape(row["segment_name"]),
            f"{row['size']:,}",
            f"{row['share']:.1%}",
            escape(row["distinguishing"]),
        )
    console.print(table)
    if rep.aligned:
        console.print(
            f"ids aligned with {rep.previous_model}: {rep.same_segment_share:.1%} of "
            f"customers kept their segment, {rep.fresh_ids} new segment(s); migration matrix "
            f"in {out.parent / 'segment_migration.parquet'}",
            highlight=False,
            markup=False,
        )
    console.print(
        f"wrote {out}, {', '.join(result.summary['files'][1:])} in {seconds:.1f} s",
        highlight=False,
        markup=False,
    )
