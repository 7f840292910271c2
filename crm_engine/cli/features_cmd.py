"""`crm-engine features`: write the point-in-time customer profiles."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from crm_engine.cli._app import DataOpt, OptionalAsOfOpt, app, console, user_errors
from crm_engine.config import load_config


@app.command("features")
@user_errors
def features_command(
    data: DataOpt,
    out: Annotated[
        Path, typer.Option("--out", help="profile Parquet file to write (replaced atomically)")
    ],
    as_of: OptionalAsOfOpt = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="pipeline.toml (its features section is used)",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="skip the input contract checks")
    ] = False,
) -> None:
    """Build one point-in-time profile row per active customer and write it to Parquet."""
    from pipelines.profile_job import resolve_as_of, write_profiles

    cfg = load_config(config)
    as_of_date = resolve_as_of(data, as_of)
    start = time.perf_counter()
    rows = write_profiles(data, as_of_date, out, cfg.features, validate=not no_validate)
    seconds = time.perf_counter() - start
    console.print(
        f"wrote {rows:,} customer profiles as of {as_of_date} to {out} ({seconds:.1f} s)",
        highlight=False,
    )
