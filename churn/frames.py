"""Point-in-time training frames: profiles at earlier cuts joined with their forward labels."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from crm_engine.config import FeaturesConfig
from crm_engine.io import DataError
from features import (
    CustomerSample,
    DataStart,
    PointInTime,
    build_labels,
    build_profile,
    churn_label,
    restrict,
)

__all__ = [
    "CUT_COLUMN",
    "TrainingCuts",
    "build_training_frames",
    "labelled_profile",
    "surveyed_cuts",
    "surveyed_snapshots",
    "training_cuts",
    "with_extras",
]

CUT_COLUMN = "as_of"
"""The cut of each row of a training or validation frame (never a feature: see
``features.column_role``); stacked snapshots tell their rows apart by it."""


@dataclass(frozen=True)
class TrainingCuts:
    """The snapshots the churn models learn from, all labelled before ``as_of``.

    Attributes
    ----------
    train
        Training cuts, latest first: ``valid - h - (k - 1) * step`` for ``k = 1..n``. Each is
        labelled by its own window ``[cut, cut + h)``, and every window ends on or before the
        validation cut, so no training row knows anything that happens after it.
    valid
        The validation cut ``as_of - h``, labelled by ``[as_of - h, as_of)``: a later snapshot
        than every training one, never a random split of them.
    """

    train: tuple[dt.date, ...]
    valid: dt.date

    @property
    def latest_train(self) -> dt.date:
        return self.train[0]


def training_cuts(
    as_of: dt.date, horizon_days: int, snapshots: int = 1, step_days: int = 30
) -> TrainingCuts:
    """The validation cut ``as_of - h`` and ``snapshots`` training cuts before it.

    The latest training cut is ``as_of - 2h``; each further one is ``step_days`` earlier.
    """
    if snapshots < 1:
        raise ValueError(f"snapshots={snapshots} should be at least 1")
    if step_days < 1:
        raise ValueError(f"step_days={step_days} should be at least 1")
    h = dt.timedelta(days=horizon_days)
    valid = as_of - h
    step = dt.timedelta(days=step_days)
    return TrainingCuts(train=tuple(valid - h - k * step for k in range(snapshots)), valid=valid)


def with_extras(
    profile: pl.LazyFrame, tables: dict[str, pl.LazyFrame], extra_features: list[str]
) -> pl.LazyFrame:
    """Join configured customers-table attributes onto the profile (the profile drops them).

    Raises
    ------
    DataError
        An extra feature that is neither a profile column nor a column of ``customers``.
    """
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
    features_cfg: FeaturesConfig,
    extra_features: list[str],
    horizon_days: int,
    profile: pl.LazyFrame | None = None,
    sample: CustomerSample | None = None,
) -> pl.LazyFrame:
    """Profile at ``cut`` (plus extra features) joined with the labels looking ``h`` ahead.

    ``profile`` is the profile at ``cut`` (of ``sample``'s customers) when the caller already
    has it (built otherwise). ``sample``: only these customers (None: everyone). The frame
    ends with :data:`CUT_COLUMN`, the cut.
    """
    base = profile if profile is not None else build_profile(tables, cut, features_cfg, sample)
    keyed = restrict(tables, sample)
    labels = build_labels(keyed, cut, horizon_days).select(
        "customer_id", churn_label(horizon_days), "loyalty_class"
    )
    return (
        with_extras(base, keyed, extra_features)
        .join(labels, on="customer_id", how="left", maintain_order="left")
        .with_columns(pl.lit(cut, dtype=pl.Date).alias(CUT_COLUMN))
    )


def build_training_frames(
    at: PointInTime,
    features_cfg: FeaturesConfig,
    extra_features: list[str],
    horizon_days: int,
    snapshots: int = 1,
    step_days: int = 30,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stacked training snapshots and the validation frame (:func:`training_cuts` of
    ``at.as_of``).

    The training frame holds one row per customer and training cut (latest cut first, each
    row's cut in :data:`CUT_COLUMN`): a customer present at several cuts appears once per cut,
    each row labelled by its own window. The profiles come from ``at.profile_at`` (the
    pipeline hands over its cached ones), of ``at.sample``'s customers at every cut (None:
    everyone); ``at.start`` dates the first transaction.

    Raises
    ------
    DataError
        When a cut has no customers (the data must cover the snapshots before ``as_of``), or
        the earliest training cut is not after the first transaction.
    """
    cuts = training_cuts(at.as_of, horizon_days, snapshots, step_days)
    _check_history(at.start, cuts.train[-1], snapshots, step_days)
    at.expect([*cuts.train, cuts.valid], at.sample)
    *trains, valid = (
        _labelled(at, cut, features_cfg, extra_features, horizon_days)
        for cut in (*cuts.train, cuts.valid)
    )
    named = [(f"training cut {cut}", f) for cut, f in zip(cuts.train, trains, strict=True)]
    for name, frame in (*named, (f"validation cut {cuts.valid}", valid)):
        if frame.height == 0:
            raise DataError(
                f"no customers at the {name} (as_of={at.as_of}, horizon={horizon_days}d, "
                f"{snapshots} training snapshot(s) {step_days}d apart): the data must cover "
                f"every cut"
            )
    return pl.concat(trains, how="vertical"), valid


def surveyed_cuts(
    at: PointInTime, horizon_days: int, after: int, snapshots: int, step_days: int
) -> list[dt.date]:
    """The cuts :func:`surveyed_snapshots` reads: the training cuts after the first ``after``,
    up to ``snapshots`` in all, after the first transaction."""
    cuts = training_cuts(at.as_of, horizon_days, max(snapshots, after), step_days).train[after:]
    first_day = at.start.first_day
    return [c for c in cuts if first_day is None or c > first_day]


def surveyed_snapshots(
    at: PointInTime,
    features_cfg: FeaturesConfig,
    extra_features: list[str],
    horizon_days: int,
    after: int,
    snapshots: int,
    step_days: int,
) -> pl.DataFrame | None:
    """The rows with a ``loyalty_class`` of the training cuts after the first ``after`` (those
    of :func:`build_training_frames`), up to ``snapshots`` cuts in all, stacked latest first:
    only the cuts after the first transaction (see :func:`_check_history`); None when no cut
    is left.

    Survey answers are scarce: the loyalty model learns from more snapshots than the churn
    model, and keeps only the surveyed customers' rows of the extra ones.
    """
    usable = surveyed_cuts(at, horizon_days, after, snapshots, step_days)
    if not usable:
        return None
    at.expect(usable, at.sample)
    frames = [
        _labelled(at, cut, features_cfg, extra_features, horizon_days)
        .lazy()
        .filter(pl.col("loyalty_class").is_not_null())
        .collect()
        for cut in usable
    ]
    return pl.concat(frames, how="vertical")


def _labelled(
    at: PointInTime,
    cut: dt.date,
    features_cfg: FeaturesConfig,
    extra_features: list[str],
    horizon_days: int,
) -> pl.DataFrame:
    """:func:`labelled_profile` at ``cut``, collected before the next cut's profile is asked
    for: one cut's profile alive at a time (the pipeline hands them over, see
    ``pipelines.profiles.ProfileCache.take``). In ``customer_id`` order: the rows of a
    profile come in no fixed order (the buckets', the executors' files'), and the fits (their
    bagging, the calibration's sums) depend on it, so every backend and every run fits the
    same models on the same rows."""
    profile = at.profile_at(cut, at.sample).lazy()
    return (
        labelled_profile(
            at.sample_tables(), cut, features_cfg, extra_features, horizon_days, profile, at.sample
        )
        .sort("customer_id")
        .collect()
    )


def _check_history(start: DataStart, earliest: dt.date, snapshots: int, step_days: int) -> None:
    """Raise when the earliest training cut is not after the first transaction.

    Before it, a snapshot has no history at all: its customers would be learnt from as if
    they never spent, and the model would be trained on an operator that never existed.
    """
    if start.first_day is not None and earliest <= start.first_day:
        raise DataError(
            f"the earliest churn training cut {earliest} ({snapshots} snapshots "
            f"{step_days}d apart) is not after the first row of table transactions "
            f"(column ts: {start.first_day}, {start.rows:,} rows): lower "
            "churn.training_snapshots or churn.snapshot_step_days, or give more history"
        )
