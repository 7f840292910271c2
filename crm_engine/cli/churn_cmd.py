"""`crm-engine churn train|score`: fit the churn and loyalty models, score with registered ones."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from crm_engine.cli._app import DataOpt, app, console, user_errors
from crm_engine.config import ConfigError, load_config

churn_app = typer.Typer(
    name="churn",
    help="Churn and loyalty models: train out of time and register, or score with a model.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(churn_app, name="churn")

AsOfOpt = Annotated[str, typer.Option("--as-of", help="first day not observed (YYYY-MM-DD)")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="pipeline.toml", exists=True, dir_okay=False),
]
TrackingOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow store (default: config, MLFLOW_TRACKING_URI, sqlite:///<data>/../mlflow.db)",
    ),
]


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--as-of {value!r} is not a date (YYYY-MM-DD)") from None


@churn_app.command("train")
@user_errors
def train_command(
    data: DataOpt,
    as_of: AsOfOpt,
    horizon_days: Annotated[
        int | None,
        typer.Option("--horizon-days", min=1, help="label horizon (default: churn.horizon_days)"),
    ] = None,
    config: ConfigOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Train on the cuts as_of-2h (train) and as_of-h (validation), log and register."""
    from pipelines.churn_job import train_job

    cfg = load_config(config, {"churn.horizon_days": horizon_days})
    result = train_job(data, _date(as_of), cfg, tracking_uri=tracking_uri)
    t = result.training
    m = t.metrics
    table = Table(title=f"churn model, out of time (validation cut {t.valid_cut})", show_edge=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "roc_auc",
        "pr_auc",
        "brier",
        "log_loss",
        "lift_top_decile",
        "capture_top_decile",
        "base_rate",
        "mean_prediction",
    ):
        table.add_row(key, f"{m[f'churn.{key}']:.4f}")
    for key in ("auc_promoter", "auc_passive", "auc_detractor", "log_loss"):
        if f"loyalty.{key}" in m:
            table.add_row(f"loyalty {key}", f"{m[f'loyalty.{key}']:.4f}")
    console.print(table)
    if t.loyalty_skipped:
        console.print(f"loyalty model skipped: {t.loyalty_skipped}", highlight=False)
    console.print(
        f"trained on {int(m['churn.train_rows'])} customers at {t.train_cut}, validated on "
        f"{int(m['churn.valid_rows'])} at {t.valid_cut}; horizon {t.horizon_days} days",
        highlight=False,
    )
    versions = ", ".join(f"{k}={v}" for k, v in t.model_versions.items())
    console.print(
        f"MLflow run {result.mlflow_run_id} in {result.tracking_uri}; models: {versions}",
        highlight=False,
    )


@churn_app.command("score")
@user_errors
def score_command(
    data: DataOpt,
    as_of: AsOfOpt,
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write", dir_okay=False)],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="churn model URI, e.g. models:/crm-churn/3 or "
            "models:/crm-churn@champion (default: latest registered version)",
        ),
    ] = None,
    loyalty_model: Annotated[
        str | None,
        typer.Option("--loyalty-model", help="loyalty model URI (default: latest registered)"),
    ] = None,
    config: ConfigOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Score every customer at as_of: probability, risk band, drivers, loyalty."""
    from pipelines.churn_job import score_job

    cfg = load_config(config)
    result = score_job(
        data,
        _date(as_of),
        out,
        cfg,
        model_uri=model,
        loyalty_model_uri=loyalty_model,
        tracking_uri=tracking_uri,
    )
    table = Table(title=f"churn scores at {as_of}", show_edge=False)
    table.add_column("risk band")
    table.add_column("customers", justify="right")
    for band in ("high", "medium", "low"):
        table.add_row(band, str(result.band_counts.get(band, 0)))
    console.print(table)
    console.print(
        f"wrote {result.rows} rows to {result.path} ({result.n_explained} with drivers) "
        f"using {result.churn_model_uri}"
        + (f" and {result.loyalty_model_uri}" if result.loyalty_model_uri else ""),
        highlight=False,
    )
