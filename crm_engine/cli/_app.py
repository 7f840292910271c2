"""The typer application and the error handling every command shares."""

from __future__ import annotations

import datetime as dt
import functools
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from polars.exceptions import PanicException
from rich.console import Console
from rich.markup import escape

from crm_engine.config import ConfigError, PipelineConfig, load_config
from crm_engine.io import DataError, failure

if TYPE_CHECKING:
    from pipelines.runner import Output, RunResult
    from pipelines.stages import StageOptions

app = typer.Typer(
    name="crm-engine",
    help="Customer segments, lifetime value, churn and loyalty for a mobile operator.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

console = Console()
err_console = Console(stderr=True)

DataOpt = Annotated[
    Path,
    typer.Option(
        "--data",
        help="directory of the input tables",
        exists=True,
        file_okay=False,
        dir_okay=True,
    ),
]
"""The ``--data DIR`` option every stage command shares."""

OptionalAsOfOpt = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="first day not observed (YYYY-MM-DD); default: first day "
        "of the month after the last transaction",
    ),
]
"""``--as-of``, optional: the stage commands default to the month after the last transaction."""

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="pipeline.toml", exists=True, dir_okay=False),
]
"""``--config FILE`` (its sections configure the stage; CLI flags override it)."""


def parse_as_of(value: str | None) -> dt.date | None:
    """``--as-of`` as a date (None stays None: the run picks its default).

    Raises
    ------
    ConfigError
        When ``value`` is not an ISO date.
    """
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(
            f"--as-of {value!r} is not an ISO date (YYYY-MM-DD), or not a date of the calendar"
        ) from None


def stage_config(
    config: Path | None,
    data: Path,
    as_of: str | None,
    overrides: Mapping[str, Any] | None = None,
) -> PipelineConfig:
    """A stage command's configuration: ``--config`` (or the defaults), then ``--data`` and
    ``--as-of``, then the command's own flags (dotted keys; None: the flag was not given)."""
    base = {"data.dir": str(data), "data.as_of": parse_as_of(as_of)}
    return load_config(config, base | dict(overrides or {}))


def run_named(
    cfg: PipelineConfig,
    name: str,
    output: Output,
    options: StageOptions | None = None,
    **run: Any,
) -> tuple[RunResult, float]:
    """Run the named pipeline (``pipelines.stages.PIPELINES``) into ``output``.

    ``run`` goes to :func:`pipelines.runner.run_pipeline` (``tracking``, ``run_name``, ...).

    Returns
    -------
    (result, seconds)
        The run's result and how long it took.
    """
    from pipelines.runner import run_pipeline
    from pipelines.stages import pipeline

    start = time.perf_counter()
    result = run_pipeline(cfg, pipeline(name, options=options), output, **run)
    return result, time.perf_counter() - start


P = ParamSpec("P")
R = TypeVar("R")


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C, so staging is removed and tracked runs end FAILED."""


def one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """A warning as the command line shows it: one line, ``<Category>: <message>`` (the
    ``warnings.formatwarning`` that :func:`crm_engine.cli.main` installs; Python's default adds
    the file, line number and source line, which say nothing to the analyst running a job)."""
    text = " ".join(str(message).split())
    return f"{category.__name__}: {text}\n"


def on_sigterm(signum: int, frame: object) -> None:
    """The SIGTERM handler the console script installs (``crm_engine.cli.main``)."""
    raise Terminated


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a user's mistake (bad config, bad data, a failed stage) into one stderr line and exit
    code 1; nothing was written (the runner commits only a whole, successful run). Ctrl-C and
    SIGTERM stop the run the same way, with exit codes 130 and 143."""
    from crm_engine.tracking import TrackingError
    from pipelines.runner import StageError

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (ConfigError, DataError, StageError, TrackingError, OSError) as e:
            err_console.print(
                f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True
            )
            if isinstance(e, StageError | TrackingError | OSError):
                err_console.print("nothing was written; the previous output is untouched")
            sys.exit(1)
        except PanicException as e:  # a BaseException: it would end in a Rust+Python traceback
            err_console.print(
                f"[bold red]error:[/] Polars failed ({escape(failure(e))}); nothing was written",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(1)
        except (KeyboardInterrupt, Terminated) as e:
            what = "interrupted" if isinstance(e, KeyboardInterrupt) else "terminated (SIGTERM)"
            err_console.print(
                f"[bold red]{what}:[/] nothing was written; the previous output is untouched",
                highlight=False,
            )
            sys.exit(130 if isinstance(e, KeyboardInterrupt) else 143)

    return wrapper


def command(name: str, on: typer.Typer = app) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Register a function as the command ``name`` of ``on`` (the root app, or a sub-app such as
    ``churn``), with the error handling every command shares (:func:`user_errors`)."""

    def register(func: Callable[P, R]) -> Callable[P, R]:
        return on.command(name)(user_errors(func))

    return register


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"crm-engine {version('crm-engine')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Customer segments, lifetime value, churn and loyalty for a mobile operator."""
