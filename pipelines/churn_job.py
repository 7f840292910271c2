"""Churn and loyalty jobs: point-in-time training frames, MLflow logging, registry scoring."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from churn import (
    ChurnModel,
    LoyaltyModel,
    add_loyalty,
    global_importance,
    plot_importance,
    plot_lift,
    plot_reliability,
    score_churn,
    score_customers,
    train_churn,
    train_loyalty,
)
from churn.model import label_column
from crm_engine.config import MlflowConfig, PipelineConfig
from crm_engine.io import DataError, load_tables, write_parquet_atomic

if TYPE_CHECKING:
    from pipelines.runner import StageContext, StageOutput

CHURN_MODEL_NAME = "crm-churn"
LOYALTY_MODEL_NAME = "crm-loyalty"
IMPORTANCE_SAMPLE_ROWS = 5_000


# --- point-in-time frames -------------------------------------------------------------------


def training_cuts(as_of: dt.date, horizon_days: int) -> tuple[dt.date, dt.date]:
    """``(training cut, validation cut)`` = ``(as_of - 2h, as_of - h)``.

    Labels of the validation cut cover ``[as_of - h, as_of)`` and those of the training cut
    ``[as_of - 2h, as_of - h)``: both are known at ``as_of``, and the validation customers are
    a later snapshot, never a random split of the training one.
    """
    h = dt.timedelta(days=horizon_days)
    return as_of - 2 * h, as_of - h


def _with_extras(
    profile: pl.LazyFrame, tables: dict[str, pl.LazyFrame], extra_features: list[str]
) -> pl.LazyFrame:
    """Join configured customers-table attributes onto the profile (the profile drops them)."""
    if not extra_features:
        return profile
    present = profile.collect_schema()
    wanted = [c for c in extra_features if c not in present]
    if not wanted:
        return profile
    available = tables["customers"].collect_schema()
    missing = [c for c in wanted if c not in available]
    if missing:
        raise DataError(
            f"churn.extra_features {missing} are neither profile columns nor columns of the "
            f"customers table (its columns: {list(available)})"
        )
    return profile.join(
        tables["customers"].select("customer_id", *wanted),
        on="customer_id",
        how="left",
        maintain_order="left",
    )


def labelled_profile(
    tables: dict[str, pl.LazyFrame],
    cut: dt.date,
    cfg: PipelineConfig,
    horizon_days: int,
    profile: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Profile at ``cut`` (plus extra features) joined with the labels looking ``h`` ahead.

    ``profile`` is the profile at ``cut`` when the caller already has it (built otherwise).
    """
    from features import build_labels, build_profile

    base = profile if profile is not None else build_profile(tables, cut, cfg.features)
    profile = _with_extras(base, tables, cfg.churn.extra_features)
    labels = build_labels(tables, cut, horizon_days).select(
        "customer_id", label_column(horizon_days), "loyalty_class"
    )
    return profile.join(labels, on="customer_id", how="left", maintain_order="left")


def build_training_frames(
    tables: dict[str, pl.LazyFrame],
    as_of: dt.date,
    cfg: PipelineConfig,
    horizon_days: int,
    profile_at: Callable[[dt.date], pl.DataFrame] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Training and validation frames at ``as_of - 2h`` and ``as_of - h``, collected together.

    ``profile_at`` supplies already-built profiles by cut (the pipeline's per-run cache).
    """
    train_cut, valid_cut = training_cuts(as_of, horizon_days)

    def at(cut: dt.date) -> pl.LazyFrame | None:
        return profile_at(cut).lazy() if profile_at is not None else None

    train, valid = pl.collect_all(
        [
            labelled_profile(tables, train_cut, cfg, horizon_days, at(train_cut)),
            labelled_profile(tables, valid_cut, cfg, horizon_days, at(valid_cut)),
        ]
    )
    for name, frame, cut in (("training", train, train_cut), ("validation", valid, valid_cut)):
        if frame.height == 0:
            raise DataError(
                f"no customers at the {name} cut {cut} (as_of={as_of}, horizon="
                f"{horizon_days}d): the data must cover two horizons before as_of"
            )
    return train, valid


def scoring_profile(
    tables: dict[str, pl.LazyFrame], as_of: dt.date, cfg: PipelineConfig
) -> pl.DataFrame:
    """The profile at ``as_of`` with the extra features, collected."""
    from features import build_profile

    return _with_extras(
        build_profile(tables, as_of, cfg.features), tables, cfg.churn.extra_features
    ).collect()


# --- training ------------------------------------------------------------------------------


@dataclass
class ChurnTraining:
    """Fitted models and what to report about them."""

    churn: ChurnModel
    loyalty: LoyaltyModel | None
    train_cut: dt.date
    valid_cut: dt.date
    horizon_days: int
    importance: pl.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)
    loyalty_skipped: str | None = None
    model_versions: dict[str, str] = field(default_factory=dict)
    mlflow_run_id: str | None = None

    def params(self) -> dict[str, Any]:
        """Flat parameters for MLflow (no customer data)."""
        c = self.churn
        return {
            "horizon_days": self.horizon_days,
            "train_cut": self.train_cut.isoformat(),
            "valid_cut": self.valid_cut.isoformat(),
            "calibration": c.calibration,
            "validation_split": "hash(customer_id) halves: early stopping + calibration | report",
            "best_iteration": c.best_iteration_,
            "n_features": c.n_features_in_,
            "categorical_features": ",".join(c.feature_spec_.categorical),
            **{f"lgbm.{k}": v for k, v in c.params_.items()},
        }


def fit_models(
    tables: dict[str, pl.LazyFrame],
    as_of: dt.date,
    cfg: PipelineConfig,
    horizon_days: int | None = None,
    profile_at: Callable[[dt.date], pl.DataFrame] | None = None,
) -> ChurnTraining:
    """Build the two cuts and fit the churn (and, if enabled, loyalty) models; no tracking."""
    h = horizon_days or cfg.churn.horizon_days
    churn_cfg = cfg.churn.model_copy(update={"horizon_days": h})
    train, valid = build_training_frames(tables, as_of, cfg, h, profile_at)
    churn = train_churn(train, valid, churn_cfg)
    metrics = {f"churn.{k}": v for k, v in churn.metrics_.items()}
    loyalty: LoyaltyModel | None = None
    skipped: str | None = None
    if cfg.loyalty.enabled:
        try:
            loyalty = train_loyalty(train, valid, cfg.loyalty, churn_cfg.extra_features)
            metrics |= {f"loyalty.{k}": v for k, v in loyalty.metrics_.items()}
        except ValueError as e:  # e.g. no surveys table, or too few surveyed customers
            skipped = str(e)
    else:
        skipped = "disabled in config"
    sample = valid.sample(n=min(IMPORTANCE_SAMPLE_ROWS, valid.height), seed=churn_cfg.seed)
    importance = global_importance(churn.contributions(sample), churn.feature_names_in_)
    train_cut, valid_cut = training_cuts(as_of, h)
    return ChurnTraining(
        churn=churn,
        loyalty=loyalty,
        train_cut=train_cut,
        valid_cut=valid_cut,
        horizon_days=h,
        importance=importance,
        metrics=metrics,
        loyalty_skipped=skipped,
    )


def write_plots(training: ChurnTraining, directory: Path) -> dict[str, Path]:
    """Reliability, lift and importance PNGs plus the importance table (aggregates only)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    c = training.churn
    out = {
        "churn_reliability": plot_reliability(
            c.report_y_, c.report_p_, directory / "churn_reliability.png"
        ),
        "churn_lift": plot_lift(c.report_y_, c.report_p_, directory / "churn_lift.png"),
        "churn_importance": plot_importance(
            training.importance, directory / "churn_importance.png"
        ),
    }
    path = directory / "churn_importance.csv"
    training.importance.write_csv(path)
    out["churn_importance_table"] = path
    return out


def log_training(training: ChurnTraining, register: bool) -> dict[str, str]:
    """Log params, metrics, plots and both models into the active MLflow run.

    Returns
    -------
    dict
        ``{"churn": version, "loyalty": version}`` of the registered models (or run URIs).
    """
    import mlflow

    from churn.pyfunc import log_churn_model, log_loyalty_model
    from crm_engine import tracking

    tracking.log_params(training.params())
    tracking.log_metrics(training.metrics)
    if training.loyalty_skipped:
        mlflow.set_tag("crm.loyalty_skipped", training.loyalty_skipped[:500])
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_plots(training, Path(tmp)).values():
            mlflow.log_artifact(str(path), artifact_path="churn")
    versions: dict[str, str] = {}
    info = log_churn_model(
        training.churn, registered_model_name=CHURN_MODEL_NAME if register else None
    )
    versions["churn"] = str(info.registered_model_version or info.model_uri)
    if training.loyalty is not None:
        info = log_loyalty_model(
            training.loyalty, registered_model_name=LOYALTY_MODEL_NAME if register else None
        )
        versions["loyalty"] = str(info.registered_model_version or info.model_uri)
    training.model_versions = versions
    return versions


# --- tracking store --------------------------------------------------------------------------


def resolve_tracking(cfg: PipelineConfig, data_dir: Path, tracking_uri: str | None) -> str:
    """Point MLflow at a store: ``tracking_uri``, else config, else ``MLFLOW_TRACKING_URI``,
    else ``sqlite:///<data_dir>/../mlflow.db`` (beside the data directory)."""
    from crm_engine import tracking

    uri = tracking_uri or cfg.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri is None:
        uri = f"sqlite:///{(Path(data_dir).resolve().parent / 'mlflow.db')}"
    mcfg = MlflowConfig(
        tracking_uri=uri,
        experiment=cfg.mlflow.experiment,
        register_models=cfg.mlflow.register_models,
    )
    return tracking.configure(mcfg, Path(data_dir).resolve().parent)


@dataclass
class TrainResult:
    """What `crm-engine churn train` reports."""

    training: ChurnTraining
    tracking_uri: str
    mlflow_run_id: str


def train_job(
    data_dir: Path,
    as_of: dt.date,
    cfg: PipelineConfig,
    horizon_days: int | None = None,
    tracking_uri: str | None = None,
) -> TrainResult:
    """Load the tables, fit churn and loyalty out of time, log one MLflow run and register.

    Parameters
    ----------
    data_dir
        Directory of the input tables.
    as_of
        First day not observed; training cut ``as_of - 2h``, validation cut ``as_of - h``.
    cfg
        Pipeline config (``churn``, ``loyalty``, ``features``, ``mlflow`` sections).
    horizon_days
        Overrides ``cfg.churn.horizon_days``.
    tracking_uri
        Overrides the configured MLflow store (see :func:`resolve_tracking`).
    """
    from crm_engine import tracking

    tables = load_tables(Path(data_dir))
    uri = resolve_tracking(cfg, data_dir, tracking_uri)
    training = fit_models(tables, as_of, cfg, horizon_days)
    with tracking.parent_run(
        f"churn-train-{as_of.isoformat()}", tags={"crm.stage": "churn", "crm.as_of": str(as_of)}
    ) as run:
        log_training(training, register=cfg.mlflow.register_models)
    training.mlflow_run_id = run.info.run_id
    return TrainResult(training=training, tracking_uri=uri, mlflow_run_id=run.info.run_id)


# --- scoring -------------------------------------------------------------------------------


def latest_model_uri(name: str) -> str | None:
    """``models:/<name>/<highest version>``, or None when nothing is registered."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        versions = MlflowClient().search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    if not versions:
        return None
    return f"models:/{name}/{max(int(v.version) for v in versions)}"


@dataclass
class ScoreResult:
    """What `crm-engine churn score` reports."""

    path: Path
    rows: int
    churn_model_uri: str
    loyalty_model_uri: str | None
    band_counts: dict[str, int]
    n_explained: int


def score_job(
    data_dir: Path,
    as_of: dt.date,
    out: Path,
    cfg: PipelineConfig,
    model_uri: str | None = None,
    loyalty_model_uri: str | None = None,
    tracking_uri: str | None = None,
) -> ScoreResult:
    """Score every customer at ``as_of`` with registered models and write a Parquet file.

    ``model_uri`` defaults to the latest registered ``crm-churn`` version and
    ``loyalty_model_uri`` to the latest ``crm-loyalty`` one (loyalty columns are null when none
    is registered). ``value_at_risk`` is null here: CLV comes from the full pipeline.
    """
    from churn.pyfunc import load_churn_model, load_loyalty_model

    tables = load_tables(Path(data_dir))
    resolve_tracking(cfg, data_dir, tracking_uri)
    model_uri = model_uri or latest_model_uri(CHURN_MODEL_NAME)
    if model_uri is None:
        raise DataError(
            f"no registered model {CHURN_MODEL_NAME!r} in the tracking store: run "
            "`crm-engine churn train` first or pass --model"
        )
    churn = load_churn_model(model_uri)
    loyalty_model_uri = loyalty_model_uri or latest_model_uri(LOYALTY_MODEL_NAME)
    loyalty = load_loyalty_model(loyalty_model_uri) if loyalty_model_uri else None
    profile = scoring_profile(tables, as_of, cfg)
    scores = score_customers(profile, churn, loyalty, cfg.churn, clv=None)
    scores = scores.with_columns(pl.lit(as_of).alias("as_of")).select(
        "customer_id", "as_of", *[c for c in scores.columns if c != "customer_id"]
    )
    meta = {
        "crm.as_of": as_of.isoformat(),
        "crm.model_versions": json.dumps(
            {"churn": model_uri, "loyalty": loyalty_model_uri}, sort_keys=True
        ),
    }
    path = write_parquet_atomic(scores, Path(out), meta)
    counts = scores.group_by("churn_risk_band").len()
    return ScoreResult(
        path=path,
        rows=scores.height,
        churn_model_uri=model_uri,
        loyalty_model_uri=loyalty_model_uri,
        band_counts={r["churn_risk_band"]: int(r["len"]) for r in counts.iter_rows(named=True)},
        n_explained=int((scores["churn_drivers"].list.len() > 0).sum()),
    )


# --- pipeline stage --------------------------------------------------------------------------


def churn_stage(
    ctx: StageContext,
    tables: dict[str, pl.LazyFrame],
    profile: pl.DataFrame,
    values: pl.DataFrame | None = None,
) -> StageOutput:
    """Pipeline stage: train on the two earlier cuts, score ``profile``, report.

    Reads ``tables`` (for the training cuts), ``profile`` (at ``ctx.as_of``) and, when the
    valuation stage ran, ``values`` (its ``clv`` gives value at risk). Writes
    ``churn_scores``. Models are logged (and registered when ``mlflow.register_models``) inside the
    runner's nested MLflow run when ``ctx.tracking``.
    """
    from pipelines.runner import StageOutput

    cfg = ctx.cfg
    training = fit_models(tables, ctx.as_of, cfg, profile_at=ctx.profile_at)
    versions: dict[str, str] = {}
    if ctx.tracking:
        from churn.pyfunc import log_churn_model, log_loyalty_model

        reg = cfg.mlflow.register_models
        info = log_churn_model(
            training.churn, registered_model_name=CHURN_MODEL_NAME if reg else None
        )
        versions["churn"] = str(info.registered_model_version or info.model_uri)
        if training.loyalty is not None:
            info = log_loyalty_model(
                training.loyalty, registered_model_name=LOYALTY_MODEL_NAME if reg else None
            )
            versions["loyalty"] = str(info.registered_model_version or info.model_uri)
    scoring = _with_extras(profile.lazy(), tables, cfg.churn.extra_features).collect()
    clv = None
    if values is not None and {"customer_id", "clv"} <= set(values.columns):
        clv = values.select("customer_id", "clv")
    scored = score_churn(scoring, training.churn, cfg.churn, clv)
    out = add_loyalty(scored.frame, scoring, training.loyalty)
    artifacts = write_plots(training, ctx.workdir / "churn")
    return StageOutput(
        outputs={"churn_scores": out},
        metrics=training.metrics | {"churn.n_explained": scored.n_explained},
        params=training.params(),
        report={
            "metrics": training.metrics,
            "importance": scored.importance.head(15).to_dicts(),
            "loyalty_skipped": training.loyalty_skipped,
            "train_cut": training.train_cut.isoformat(),
            "valid_cut": training.valid_cut.isoformat(),
        },
        artifacts=artifacts,
        model_versions=versions,
    )
