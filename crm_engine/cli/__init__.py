"""The `crm-engine` command line: thin typer commands over library functions.

Each command lives in its own module `crm_engine/cli/<name>_cmd.py` and registers itself on
`app` when imported; every such module is imported here, in name order.
"""

from __future__ import annotations

import importlib
import pkgutil
import signal
import warnings

from crm_engine.cli._app import app, on_sigterm, one_line_warning

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name.endswith("_cmd"):
        importlib.import_module(f"{__name__}.{_info.name}")


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, on_sigterm)
    warnings.formatwarning = one_line_warning  # type: ignore[assignment]
    app()


__all__ = ["app", "main"]
