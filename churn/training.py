"""Training the churn and loyalty models point in time, and what to report about them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from churn.drivers import global_importance
from churn.frames import (
    CUT_COLUMN,
    TrainingCuts,
    build_training_frames,
    surveyed_cuts,
    surveyed_snapshots,
    training_cuts,
)
from churn.loyalty import LoyaltyModel
from churn.model import ChurnModel
from churn.plots import plot_importance, plot_learning_curve, plot_lift, plot_reliability
from churn.scoring import train_churn, train_churn_learners, train_loyalty
from crm_engine.config import FeaturesConfig, PipelineConfig
from crm_engine.memory import release_freed
from features import (
    PointInTime,
    frequent_values,
    model_features,
    pool_rare,
    profile_schema,
)

__all__ = [
    "IMPORTANCE_SAMPLE_ROWS",
    "LEARNING_CURVE_METRICS",
    "ChurnTraining",
    "learning_curve_points",
    "profile_features",
    "train_models",
    "write_plots",
]

IMPORTANCE_SAMPLE_ROWS = 5_000
LEARNING_CURVE_METRICS = ("roc_auc", "brier", "log_loss", "lift_top_decile")
"""Out-of-time metrics kept per number of stacked snapshots (the learning curve)."""


def learning_curve_points(snapshots: int) -> list[int]:
    """The numbers of stacked snapshots the learning curve fits besides the kept model's
    ``snapshots``: its half, quarter, ... down to 1, ascending (6 snapshots: 1 and 3; 3: 1;
    12: 1, 3 and 6).

    Halving, not every count: each point is a fit on that many cuts' rows, so every count below
    ``n`` would cost ``n (n - 1) / 2`` cuts of fitting (15 at 6 snapshots) against fewer than
    ``n`` (4) this way.
    """
    points, k = [], snapshots // 2
    while k >= 1:
        points.append(k)
        k //= 2
    return points[::-1]


@dataclass
class ChurnTraining:
    """Fitted models and what to report about them (aggregates only, no customer rows)."""

    churn: ChurnModel
    loyalty: LoyaltyModel | None
    cuts: TrainingCuts
    horizon_days: int
    importance: pl.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)
    loyalty_skipped: str | None = None
    challenger: ChurnModel | None = None
    """The learner ``churn.model = "auto"`` did not keep (logged to MLflow beside the kept
    one, not registered)."""
    learning_curve: list[dict[str, float]] = field(default_factory=list)
    """One row per number of stacked snapshots ``k`` (the latest ``k`` training cuts; ``k`` of
    :func:`learning_curve_points`, then all of them): ``snapshots``, ``train_rows`` and
    :data:`LEARNING_CURVE_METRICS` on the validation cut's report half; the last row is the
    kept model."""

    @property
    def train_cut(self) -> dt.date:
        """The latest training cut (``as_of - 2h``)."""
        return self.cuts.latest_train

    @property
    def valid_cut(self) -> dt.date:
        return self.cuts.valid

    def params(self) -> dict[str, Any]:
        """Flat parameters for MLflow (no customer data)."""
        c = self.churn
        return {
            "horizon_days": self.horizon_days,
            "train_cut": self.train_cut.isoformat(),
            "train_cuts": ",".join(c.isoformat() for c in self.cuts.train),
            "training_snapshots": len(self.cuts.train),
            "valid_cut": self.valid_cut.isoformat(),
            "calibration": c.calibration,
            "model": c.learner,
            "validation_split": "hash(customer_id) halves: early stopping + calibration | report",
            "best_iteration": c.best_iteration_,
            "n_features": c.n_features_in_,
            "categorical_features": ",".join(c.feature_spec_.categorical),
            **{f"{c.learner_.param_prefix}.{k}": v for k, v in c.params_.items()},
        }


def profile_features(tables: dict[str, pl.LazyFrame], cfg: FeaturesConfig) -> list[str]:
    """The feature columns the profile of these tables declares (numeric, then categorical)."""
    id_dtype = tables["customers"].collect_schema()["customer_id"]
    numeric, categorical = model_features(profile_schema(cfg, frozenset(tables), id_dtype))
    return [*numeric, *categorical]


def train_models(
    at: PointInTime, cfg: PipelineConfig, horizon_days: int | None = None
) -> ChurnTraining:
    """Build the cuts and fit the churn (and, if enabled, loyalty) models.

    Parameters
    ----------
    at
        The run's point in time: ``as_of`` is the first day not observed (training cuts from
        ``as_of - 2h`` back by ``churn.snapshot_step_days``, ``churn.training_snapshots`` of
        them, stacked; validation cut ``as_of - h``: see :func:`churn.frames.training_cuts`);
        the models train and validate on ``at.sample``'s customers only (None: everyone; the
        pipeline bounds it by ``churn.max_training_customers`` per cut). ``at.release`` is
        called once every training frame is built, before the first fit (the pipeline frees
        the profiles of the cuts then: at 1M customers they held ~0.8 GB through fits).
    cfg
        The pipeline config (``features``, ``churn`` and ``loyalty`` sections). The loyalty
        model learns from the surveyed rows of ``loyalty.training_snapshots`` cuts (the churn
        model's, then earlier ones while the history allows; see
        :func:`churn.frames.surveyed_snapshots`).
    horizon_days
        Overrides ``cfg.churn.horizon_days``.
    """
    h = horizon_days or cfg.churn.horizon_days
    churn_cfg = cfg.churn.model_copy(update={"horizon_days": h})
    n, step = churn_cfg.training_snapshots, churn_cfg.snapshot_step_days
    cuts = training_cuts(at.as_of, h, n, step)
    extra = churn_cfg.extra_features
    wanted = cfg.loyalty.training_snapshots if cfg.loyalty.enabled else n
    loyalty_cuts = surveyed_cuts(at, h, n, wanted, step) if wanted > n else []
    at.expect([*cuts.train, cuts.valid, *loyalty_cuts], at.sample)  # one batch for every cut
    train, valid = build_training_frames(at, cfg.features, extra, h, n, step)
    release_freed()  # what building the cuts' profiles left: ~0.45 GB at 1M customers
    declared = profile_features(at.tables, cfg.features)
    text = [c for c in (*declared, *extra) if train.schema[c] == pl.String]
    keep = frequent_values(train, dict.fromkeys(text), cfg.features.min_category_customers)
    train, valid = pool_rare(train, keep), pool_rare(valid, keep)
    earlier: pl.DataFrame | None = None  # the loyalty model's earlier surveyed snapshots
    if wanted > n:
        earlier = surveyed_snapshots(at, cfg.features, extra, h, n, wanted, step)
        earlier = None if earlier is None else pool_rare(earlier, keep)
    at.release()  # every frame is built: the cuts' profiles are not needed to fit
    release_freed(collect=False)  # the call graph, when released (no cycles: no collection)
    churn, *challengers = train_churn_learners(train, valid, churn_cfg, declared)
    curve: list[dict[str, float]] = []
    if churn_cfg.learning_curve:
        same = churn_cfg.model_copy(update={"model": churn.learner})  # the kept learner
        for k in learning_curve_points(n):
            fewer = train.filter(pl.col(CUT_COLUMN).is_in(cuts.train[:k]))
            curve.append(_curve_point(k, train_churn(fewer, valid, same, declared)))
    curve.append(_curve_point(n, churn))
    metrics = {f"churn.{k}": v for k, v in churn.metrics_.items()}
    metrics |= {
        f"churn.snapshots_{int(r['snapshots'])}.{k}": r[k]
        for r in curve[:-1]
        for k in LEARNING_CURVE_METRICS
    }
    loyalty: LoyaltyModel | None = None
    skipped: str | None = None
    if cfg.loyalty.enabled:
        surveyed = train if earlier is None else pl.concat([train, earlier], how="vertical")
        try:
            loyalty = train_loyalty(surveyed, valid, cfg.loyalty, extra, declared)
            metrics |= {f"loyalty.{k}": v for k, v in loyalty.metrics_.items()}
            metrics["loyalty.training_snapshots"] = float(surveyed[CUT_COLUMN].n_unique())
        except ValueError as e:  # e.g. no surveys table, or too few surveyed customers
            skipped = str(e)
    else:
        skipped = "disabled in config"
    sample_rows = valid.sample(n=min(IMPORTANCE_SAMPLE_ROWS, valid.height), seed=churn_cfg.seed)
    importance = global_importance(churn.contributions(sample_rows), churn.feature_names_in_)
    return ChurnTraining(
        churn=churn,
        loyalty=loyalty,
        cuts=cuts,
        horizon_days=h,
        importance=importance,
        metrics=metrics,
        loyalty_skipped=skipped,
        challenger=challengers[0] if challengers else None,
        learning_curve=curve,
    )


def _curve_point(snapshots: int, model: ChurnModel) -> dict[str, float]:
    m = model.metrics_
    return {
        "snapshots": float(snapshots),
        "train_rows": m["train_rows"],
        **{k: m[k] for k in LEARNING_CURVE_METRICS},
    }


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
    if len(training.learning_curve) > 1:
        out["churn_learning_curve"] = plot_learning_curve(
            training.learning_curve, directory / "churn_learning_curve.png"
        )
    path = directory / "churn_importance.csv"
    training.importance.write_csv(path)
    out["churn_importance_table"] = path
    return out
