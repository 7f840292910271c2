"""`crm-engine config`: show the resolved configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crm_engine.cli._app import command
from crm_engine.config import config_to_toml, load_config


@command("config")
def config_command(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="pipeline.toml to resolve (default: embedded defaults)",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    show: Annotated[bool, typer.Option("--show", help="print the resolved config")] = True,
) -> None:
    """Validate a config file and print the resolved configuration as TOML."""
    cfg = load_config(path)
    if show:
        # plain text, never wrapped to the terminal: the output is a config file again
        typer.echo(config_to_toml(cfg))
