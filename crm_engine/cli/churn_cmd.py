"""`crm-engine churn train|score`: fit the churn and loyalty models, score with registered ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from crm_engine.cli._app import (
    ConfigOpt,
    DataOpt,
    app,
    command,
    console,
    run_named,
    stage_config,
)
from crm_engine.contracts import score_values
from crm_engine.stage_reports import ChurnReport
from crm_engine.tracking import require_store

churn_app = typer.Typer(
    name="churn",
    help="Churn and loyalty models: train out of time and register, or score with a model.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(churn_app, name="churn")

AsOfOpt = Annotated[str, typer.Option("--as-of", help="first day not observed (YYYY-MM-DD)")]
TrackingOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow store (default: mlflow.tracking_uri, MLFLOW_TRACKING_URI, "
        "sqlite:///<output.dir>/mlflow.db, the store crm-engine run uses)",
    ),
]


@command("train", on=churn_app)
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
    from pipelines.outputs import nothing

    overrides = {"mlflow.tracking_uri": tracking_uri, "churn.horizon_days": horizon_days}
    cfg = stage_config(config, data, as_of, overrides)
    result, _ = run_named(cfg, "churn-train", nothing(), run_name="churn-train")
    rep: ChurnReport = result.reports["churn"]
    m = result.metrics["churn"]
    table = Table(
        title=f"churn model, out of time (validation cut {rep.valid_cut})", show_edge=False
    )
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
    console.print(f"model: {rep.model_choice()}", highlight=False, markup=False)
    if rep.loyalty_skipped:
        console.print(f"loyalty model skipped: {rep.loyalty_skipped}", markup=False)
    console.print(
        f"trained on {int(m['churn.train_rows'])} customer snapshots at "
        f"{', '.join(str(c) for c in rep.train_cuts or [rep.train_cut])}, validated on "
        f"{int(m['churn.valid_rows'])} at {rep.valid_cut}; horizon {rep.horizon_days} days",
        highlight=False,
    )
    versions = ", ".join(f"{k}={v}" for k, v in result.model_versions.items())
    console.print(
        f"MLflow run {result.mlflow_run_id} in {result.tracking_uri}; models: {versions}",
        highlight=False,
        markup=False,
    )


@command("score", on=churn_app)
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
    from pipelines.outputs import churn_scores_file
    from pipelines.stages import StageOptions

    cfg = stage_config(config, data, as_of, {"mlflow.tracking_uri": tracking_uri})
    require_store(cfg.mlflow, Path(cfg.output.dir))
    options = StageOptions(churn_uri=model, loyalty_uri=loyalty_model)
    result, _ = run_named(
        cfg, "churn-score", churn_scores_file(out), options, run_name="churn-score"
    )
    table = Table(title=f"churn scores at {result.as_of}", show_edge=False)
    table.add_column("risk band")
    table.add_column("customers", justify="right")
    # the bands the model assigns: the declared ones but the last (lost needs a valuation)
    for band in score_values("churn_risk_band")[:-1]:
        table.add_row(band, str(result.summary["band_counts"].get(band, 0)))
    console.print(table)
    used = " and ".join(result.model_versions.values())
    console.print(
        f"wrote {result.summary['rows']} rows to {out} ({result.summary['n_explained']} with "
        f"drivers) using {used}",
        highlight=False,
        markup=False,
    )
