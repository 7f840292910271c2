"""`crm-engine features`: write the point-in-time customer profiles."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from crm_engine.cli._app import (
    ConfigOpt,
    DataOpt,
    OptionalAsOfOpt,
    app,
    console,
    parse_as_of,
    user_errors,
)
from crm_engine.config import load_config


@app.command("features")
@user_errors
def features_command(
    data: DataOpt,
    out: Annotated[
        Path, typer.Option("--out", help="profile Parquet file to write (replaced atomically)")
    ],
    as_of: OptionalAsOfOpt = None,
    config: ConfigOpt = None,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="skip the input contract checks")
    ] = False,
) -> None:
    """Build one point-in-time profile row per active customer and write it to Parquet."""
    from pipelines.outputs import profile_file
    from pipelines.runner import run_pipeline
    from pipelines.stages import pipeline

    cfg = load_config(config, {"data.dir": str(data), "data.as_of": parse_as_of(as_of)})
    start = time.perf_counter()
    result = run_pipeline(
        cfg,
        pipeline("features"),
        profile_file(out),
        tracking=False,
        validate_inputs=not no_validate,
    )
    seconds = time.perf_counter() - start
    console.print(
        f"wrote {result.summary['rows']:,} customer profiles as of {result.as_of} to {out} "
        f"({seconds:.1f} s)",
        highlight=False,
    )
