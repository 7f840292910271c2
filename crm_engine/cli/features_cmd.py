"""`crm-engine features`: write the point-in-time customer profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crm_engine.cli._app import (
    ConfigOpt,
    DataOpt,
    OptionalAsOfOpt,
    command,
    console,
    run_named,
    stage_config,
)


@command("features")
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

    cfg = stage_config(config, data, as_of)
    result, seconds = run_named(
        cfg, "features", profile_file(out), tracking=False, validate_inputs=not no_validate
    )
    console.print(
        f"wrote {result.summary['rows']:,} customer profiles as of {result.as_of} to {out} "
        f"({seconds:.1f} s)",
        highlight=False,
    )
