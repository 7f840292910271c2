"""The `crm-engine` command line: thin typer commands over library functions."""

from __future__ import annotations

from crm_engine.cli._app import app


def main() -> None:
    """Console-script entry point."""
    from crm_engine.cli import config_cmd  # noqa: F401  (registers commands)

    app()


__all__ = ["app", "main"]
