"""`crm-engine run` and `crm-engine demo`: the monthly batch job, and the same on synthetic data."""

from __future__ import annotations

import datetime as dt
import enum
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from crm_engine.cli._app import command, console
from crm_engine.config import PipelineConfig, load_config


class Backend(enum.StrEnum):
    """``--backend``: where the profiles are computed (``engine.backend``)."""

    local = "local"
    spark = "spark"


class _StageDisplay:
    """A live table of stages with their state and elapsed time (off with --quiet)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.rows: dict[str, tuple[str, float | None, float]] = {}
        self.live: Live | None = None

    def __enter__(self) -> _StageDisplay:
        return self  # the table shows from the first step on (nothing before a refusal)

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self.live is None:
            return
        if exc_type is not None and not any(s == "done" for s, _, _ in self.rows.values()):
            # failed before any step finished (a missing data directory, Spark not there):
            # the error line says it all, so the table is erased (not printed off a terminal)
            self.live.transient = True
        self.live.update(self._render())
        self.live.__exit__(None, None, None)

    def _render(self) -> Table:
        table = Table(title="crm-engine run", show_edge=False)
        table.add_column("stage")
        table.add_column("state")
        table.add_column("seconds", justify="right")
        for name, (state, secs, started) in self.rows.items():
            shown = secs if secs is not None else time.perf_counter() - started
            mark = "[green]done[/]" if state == "done" else "[cyan]running…[/]"
            table.add_row(name, mark, f"{shown:.1f}")
        return table

    def __call__(self, stage: str, state: str, seconds: float | None) -> None:
        prev = self.rows.get(stage)
        started = prev[2] if prev else time.perf_counter()
        self.rows[stage] = (state, seconds, started)
        if self.live is not None:
            self.live.update(self._render())
        elif self.enabled:
            self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False)
            self.live.__enter__()


def _summary_table(result: Any) -> Table:
    s = result.summary

    def num(v: Any, fmt: str = "{:,.0f}") -> str:
        return "[dim]stage not run[/]" if v is None else fmt.format(v)

    t = Table(title="Run summary", show_header=False)
    t.add_column("what")
    t.add_column("value")
    t.add_row("as of", result.as_of.isoformat())
    t.add_row("customers scored", f"{s['customers_scored']:,}")
    t.add_row("segments", num(s["segments"], "{}"))
    t.add_row("total CLV", num(s["total_clv"]))
    t.add_row("churn risk band high", num(s["high_churn_risk"]))
    t.add_row("value at risk", num(s["value_at_risk"]))
    t.add_row("value at risk through contacts", num(s.get("value_at_risk_network")))
    t.add_row("lost customers (dormant)", num(s.get("lost_customers")))
    t.add_row("MLflow run", result.mlflow_run_id or "[dim]tracking off[/]")
    t.add_row("tracking URI", escape(result.tracking_uri or "-"))
    t.add_row("outputs", escape(str(result.output_dir)))
    return t


def execute(
    cfg: PipelineConfig,
    *,
    stages: list[str] | None,
    quiet: bool,
    tracking: bool = True,
    registry: bool = False,
) -> Any:
    """Run the pipeline with the stage display; print the summary table unless quiet."""
    from pipelines.runner import run_pipeline
    from pipelines.stages import pipeline

    selected = [s.strip() for item in stages or [] for s in item.split(",") if s.strip()]
    try:
        stage_list = pipeline("score-only" if registry else "run", selected or None)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--stages") from None
    mode = "score-only" if registry else "train"
    if registry and tracking:
        from crm_engine.tracking import require_store

        require_store(cfg.mlflow, Path(cfg.output.dir))
    with _StageDisplay(enabled=not quiet) as display:
        result = run_pipeline(
            cfg,
            stage_list,
            tracking=tracking,
            run_name=f"crm-{mode}",
            progress=display,
        )
    drift = result.reports.get("drift")
    drift_lines = drift.lines() if drift is not None else []
    if quiet:
        typer.echo(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "mlflow_run_id": result.mlflow_run_id,
                    "output": str(result.output_dir),
                    **result.summary,
                    "drift_alerts": drift_lines,
                }
            )
        )
    else:
        console.print()
        console.print(_summary_table(result))
        for line in drift_lines:  # one line each, however narrow the terminal
            console.print(escape(line), soft_wrap=True, highlight=False)
    return result


@command("run")
def run_command(
    config: Annotated[
        Path | None,
        typer.Argument(
            help="pipeline.toml (default: embedded defaults)", exists=True, dir_okay=False
        ),
    ] = None,
    as_of: Annotated[
        dt.datetime | None,
        typer.Option("--as-of", formats=["%Y-%m-%d"], help="first day not observed"),
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="input directory")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output directory")] = None,
    stages: Annotated[
        list[str] | None,
        typer.Option(
            "--stages",
            help="stages to run (repeat, or comma-separated): profile, segmentation, "
            "valuation, churn; default all",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="no progress display (schedulers)")
    ] = False,
    score_only: Annotated[
        bool,
        typer.Option("--score-only", help="score with the registered models, no training"),
    ] = False,
    registry: Annotated[
        bool, typer.Option("--registry", help="same as --score-only (kept for old scripts)")
    ] = False,
    no_tracking: Annotated[
        bool, typer.Option("--no-tracking", help="do not log to MLflow")
    ] = False,
    backend: Annotated[
        Backend | None,
        typer.Option(
            "--backend",
            help="where profiles are computed: local (Polars) or spark (Apache Spark, "
            "engine.spark settings); default engine.backend",
        ),
    ] = None,
) -> None:
    """Validate inputs, build profiles, segments, values and churn scores, write the outputs."""
    overrides = {
        "data.as_of": as_of.date() if as_of else None,
        "data.dir": str(data) if data else None,
        "output.dir": str(out) if out else None,
        "engine.backend": backend.value if backend else None,
    }
    cfg = load_config(config, overrides)
    execute(
        cfg, stages=stages, quiet=quiet, tracking=not no_tracking, registry=score_only or registry
    )


@command("demo")
def demo_command(
    customers: Annotated[int, typer.Option(help="synthetic customers", min=200)] = 20_000,
    months: Annotated[int, typer.Option(help="months of history", min=12, max=60)] = 24,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    out: Annotated[Path, typer.Option(help="demo directory (data/ and output/ inside)")] = Path(
        "demo"
    ),
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress display")] = False,
) -> None:
    """Generate a synthetic operator and run the whole pipeline on it."""
    from crm_engine.generator import generate

    data_dir = out / "data"
    stamp = data_dir / "_truth" / "params.json"
    fresh = False
    if stamp.is_file():
        params = json.loads(stamp.read_text())
        fresh = (params.get("customers"), params.get("months"), params.get("seed")) == (
            customers,
            months,
            seed,
        )
    if not fresh:
        console.print(f"generating {customers:,} customers x {months} months into {data_dir} …")
        t = time.perf_counter()
        generate(data_dir, customers=customers, months=months, seed=seed)
        console.print(f"generated in {time.perf_counter() - t:.1f} s")
    else:
        console.print(f"reusing generated data in {data_dir}")
    cfg = load_config(None, {"data.dir": str(data_dir), "output.dir": str(out / "output")})
    result = execute(cfg, stages=None, quiet=quiet)
    report = (result.output_dir / "report.html").absolute()  # the stable link, not one run
    # one copyable line each, however narrow the terminal
    console.print(f"\n[bold]Open the report:[/] {escape(report.as_uri())}", soft_wrap=True)
    if result.tracking_uri:
        console.print(
            f"[bold]Browse the MLflow runs:[/] .venv/bin/mlflow ui --backend-store-uri "
            f"{escape(result.tracking_uri)}",
            soft_wrap=True,
        )
    scores = escape(str(result.output_dir / "scores.parquet"))
    console.print(f"[bold]Scores for the CRM:[/] {scores}", soft_wrap=True)
