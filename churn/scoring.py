"""Churn and loyalty models: train from point-in-time frames, score a profile into the contract."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import polars as pl

from churn.drivers import (
    DRIVERS_DTYPE,
    REASONS_DTYPE,
    reasons_in_words,
    top_drivers,
    whom_to_explain,
)
from churn.loyalty import LoyaltyModel
from churn.model import LEARNERS, ChurnModel, iter_batches
from churn.profit import expected_profit
from crm_engine.config import ChurnConfig, LoyaltyConfig, RetentionConfig
from crm_engine.contracts import LOST_BAND, LOST_STAGE, SCORE_COLUMNS, labels_at, score_values
from crm_engine.io import frame_height, in_id_order
from crm_engine.parts import FrameParts, Parts, count_rows, gather_rows

RISK_BANDS: tuple[str, ...] = tuple(
    reversed([b for b in score_values("churn_risk_band") if b != LOST_BAND])
)
"""The ``crm.scores/v1`` risk bands the model assigns, lowest risk first (``low, medium, high``):
the declared bands, most urgent first, without :data:`~crm_engine.contracts.LOST_BAND` (that of
a customer in :data:`~crm_engine.contracts.LOST_STAGE`: silent past ``dormant_recency_days``
with P(alive) below ``dormant_p_alive``)."""
CHURN_OUTPUT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    *(c.name for c in SCORE_COLUMNS if c.stage in ("churn", "loyalty")),
)
"""The key and the ``crm.scores/v1`` columns the churn and loyalty models own, in contract
order (derived from the contract: one declaration)."""
DRIVER_BATCH_ROWS = 50_000
LOYALTY_PREFIX = "loyalty_"
"""Prefix of a loyalty class's probability in :func:`predict_customers`' frame."""


def train_churn(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    cfg: ChurnConfig,
    features: Sequence[str] | None = None,
) -> ChurnModel:
    """Fit the churn model on earlier cuts, validated out of time on a later one: the kept
    model of :func:`train_churn_learners`."""
    return train_churn_learners(train, valid, cfg, features)[0]


def train_churn_learners(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    cfg: ChurnConfig,
    features: Sequence[str] | None = None,
) -> list[ChurnModel]:
    """Fit :class:`ChurnModel` s of every learner ``cfg.model`` asks for, the kept one first.

    Parameters
    ----------
    train
        Profiles at the training cuts joined with ``churned_within_<h>d``.
    valid
        Profile at the validation cut (a later date) joined with the same label.
    cfg
        Churn section of the pipeline config.
    features
        The profile's declared feature columns (see :class:`ChurnModel`).

    With ``cfg.model = "auto"`` both learners are fitted and the one with the higher
    ``selection_roc_auc`` (the validation cut's early-stopping half; LightGBM on a tie) comes
    first; its ``metrics_`` then also hold ``<learner>.roc_auc``, ``<learner>.brier`` and
    ``<learner>.selection_roc_auc`` of both (report half, and early-stopping half), and
    ``model_auto`` = 1. Otherwise the one learner asked for.
    """
    learners = LEARNERS if cfg.model == "auto" else (cfg.model,)
    fitted = [
        ChurnModel(
            horizon_days=cfg.horizon_days,
            lgbm_params=cfg.lightgbm.model_dump(),
            early_stopping_rounds=cfg.early_stopping_rounds,
            calibration=cfg.calibration,
            extra_features=tuple(cfg.extra_features),
            seed=cfg.seed,
            features=features,
            learner=learner,
        ).fit(train, valid)
        for learner in learners
    ]
    best = max(fitted, key=lambda m: m.metrics_["selection_roc_auc"])
    if len(fitted) > 1:
        best.metrics_["model_auto"] = 1.0
        for m in fitted:
            for k in ("roc_auc", "brier", "selection_roc_auc"):
                best.metrics_[f"{m.learner}.{k}"] = m.metrics_[k]
    return [best, *(m for m in fitted if m is not best)]


def train_loyalty(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    cfg: LoyaltyConfig,
    extra_features: Sequence[str] = (),
    features: Sequence[str] | None = None,
) -> LoyaltyModel:
    """Fit a :class:`LoyaltyModel` on the surveyed customers of two cuts (see ``train_churn``)."""
    return LoyaltyModel(
        lgbm_params=cfg.lightgbm.model_dump(),
        early_stopping_rounds=cfg.early_stopping_rounds,
        extra_features=tuple(extra_features),
        seed=cfg.seed,
        features=features,
    ).fit(train, valid)


def risk_band(probability: np.ndarray, thresholds: Sequence[float]) -> pl.Series:
    """``low`` below ``thresholds[0]``, ``high`` at or above ``thresholds[1]``, else ``medium``."""
    if len(thresholds) != 2 or not thresholds[0] < thresholds[1]:
        raise ValueError(
            f"risk_thresholds={list(thresholds)} should be two increasing probabilities"
        )
    idx = np.searchsorted(
        np.asarray(thresholds, dtype=np.float64),
        np.asarray(probability, dtype=np.float64),
        side="right",
    )
    return labels_at("churn_risk_band", RISK_BANDS, idx)


def profit_band(probability: np.ndarray, profit: np.ndarray, medium_from: float) -> pl.Series:
    """``high`` where contacting pays (``profit > 0``: the profit-optimal contact set), else
    ``medium`` at or above probability ``medium_from`` and ``low`` below it."""
    p = np.asarray(probability, dtype=np.float64)
    gain = np.nan_to_num(np.asarray(profit, dtype=np.float64), nan=-np.inf)
    return labels_at("churn_risk_band", RISK_BANDS, np.where(gain > 0, 2, p >= medium_from))


@dataclass(frozen=True)
class ChurnScores:
    """Churn scores and the global importance over the explained customers.

    Attributes
    ----------
    parts
        Everyone's ``customer_id, churn_probability, churn_risk_band, churn_drivers,
        churn_reasons, value_at_risk, retention_profit`` and ``network_value,
        value_at_risk_network`` (null here, see :func:`churn.network.with_network_value`),
        where they were computed (:class:`~crm_engine.parts.Parts`: the executors' files with
        Spark).
    importance
        ``feature, mean_abs_contribution`` sorted descending (empty when nobody explained).
    n_explained
        Customers whose drivers were computed.
    n_lost
        Customers in band ``lost`` (0 without lifecycle stages).
    """

    parts: Parts
    importance: pl.DataFrame
    n_explained: int
    n_lost: int = 0

    @functools.cached_property
    def frame(self) -> pl.DataFrame:
        """:attr:`parts` read here (in the profile's row order when they lie here)."""
        return self.parts.plan().collect()


RISK_COLUMNS = (
    "customer_id",
    "churn_probability",
    "churn_risk_band",
    "value_at_risk",
    "retention_profit",
)
"""What :func:`risk_slice` gives: the churn columns that need no one else's."""


def _checked_values(values: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """The valuation's ``customer_id, clv`` (and ``lifecycle_stage``) given as a frame, refused
    without those columns or with a customer twice."""
    schema = values.collect_schema()
    for c in ("customer_id", "clv"):
        if c not in schema:
            raise ValueError(f"the clv frame needs columns customer_id and clv; missing {c!r}")
    ids = values.lazy().select(pl.len(), pl.col("customer_id").n_unique()).collect().row(0)
    if ids[0] != ids[1]:
        raise ValueError(f"the clv frame has {ids[0] - ids[1]} duplicate customer_id values")
    return values


def risk_slice(
    batch: pl.DataFrame, *, thresholds: Sequence[float], terms: RetentionConfig, valued: bool
) -> pl.DataFrame:
    """:data:`RISK_COLUMNS` of a slice of predictions (``customer_id, churn_probability``)
    with, when ``valued``, the valuation's ``clv`` and ``lifecycle_stage`` beside them (null
    for a customer it did not value): a pure function of the slice, applied where the
    predictions lie (see :func:`score_churn` for the bands and the lost)."""
    p = batch.get_column("churn_probability").cast(pl.Float64).to_numpy()
    lost = np.zeros(p.size, dtype=bool)
    var = gain = np.full(p.size, np.nan)
    if valued:
        clv = batch.get_column("clv").cast(pl.Float64).fill_null(np.nan).to_numpy()
        if "lifecycle_stage" in batch.columns:
            stage = batch.get_column("lifecycle_stage").cast(pl.String)
            lost = (stage == LOST_STAGE).fill_null(False).to_numpy()
        var = np.where(lost, 0.0, p * clv)
        gain = np.where(lost, np.nan, expected_profit(p, clv, terms))
    band = (
        profit_band(p, gain, thresholds[0])
        if valued and terms.bands == "profit"
        else risk_band(p, thresholds)
    )
    return pl.DataFrame(
        [
            batch.get_column("customer_id"),
            pl.Series("churn_probability", p, dtype=pl.Float64),
            band.zip_with(pl.Series(~lost), pl.repeat(LOST_BAND, p.size, eager=True)),
            pl.Series("value_at_risk", var, dtype=pl.Float64).fill_nan(None),
            pl.Series("retention_profit", gain, dtype=pl.Float64).fill_nan(None),
        ]
    )


def _with_drivers(batch: pl.DataFrame, explained: pl.DataFrame) -> pl.DataFrame:
    """A slice of :data:`RISK_COLUMNS` with the drivers and reasons of the ``explained``
    (``customer_id, churn_drivers, churn_reasons``; empty lists for everyone else) and the
    network columns (null: :func:`churn.network.with_network_value` fills them)."""
    out = batch.join(explained, on="customer_id", how="left", maintain_order="left")
    return out.select(
        "customer_id",
        "churn_probability",
        "churn_risk_band",
        pl.col("churn_drivers").fill_null(pl.lit([], dtype=DRIVERS_DTYPE)),
        pl.col("churn_reasons").fill_null(pl.lit([], dtype=REASONS_DTYPE)),
        "value_at_risk",
        "retention_profit",
        pl.lit(None, dtype=pl.Float64).alias("network_value"),
        pl.lit(None, dtype=pl.Float64).alias("value_at_risk_network"),
    )


def predict_customers(
    batch: pl.DataFrame,
    churn_model: ChurnModel | None,
    loyalty_model: LoyaltyModel | None = None,
) -> pl.DataFrame:
    """The per-customer model work of scoring, for a slice of the profile: ``customer_id``, the
    calibrated ``churn_probability`` (with a churn model) and the loyalty model's class
    probabilities (with one: ``loyalty_<class>``, :attr:`LoyaltyModel.classes_` order).

    A pure function of the slice and the fitted models, so it runs wherever the rows are: a
    slice at a time here, on the executors with the Spark backend
    (:meth:`pipelines.profiles.ProfileCache.map_parts`). :func:`score_churn` and
    :func:`add_loyalty` read what it gives.
    """
    out = batch.select("customer_id")
    if churn_model is not None:
        p = churn_model.predict_churn(batch)
        out = out.with_columns(pl.Series("churn_probability", p, dtype=pl.Float64))
    if loyalty_model is None:
        return out
    classes = loyalty_model.classes_
    proba = loyalty_model.predict_proba(batch).reshape(batch.height, len(classes))
    return out.with_columns(
        pl.Series(f"{LOYALTY_PREFIX}{c}", proba[:, i], dtype=pl.Float64)
        for i, c in enumerate(classes)
    )


def predict_in_slices(
    profile: pl.DataFrame | pl.LazyFrame,
    churn_model: ChurnModel | None,
    loyalty_model: LoyaltyModel | None = None,
) -> pl.DataFrame:
    """:func:`predict_customers` over ``profile`` a slice at a time (a plan is read a slice at
    a time), in its row order."""
    return pl.concat(
        predict_customers(b, churn_model, loyalty_model) for b in iter_batches(profile)
    )


def score_churn(
    profile: pl.DataFrame | pl.LazyFrame | Parts,
    churn_model: ChurnModel,
    cfg: ChurnConfig,
    clv: pl.DataFrame | pl.LazyFrame | Parts | None = None,
    retention: RetentionConfig | None = None,
    predictions: pl.DataFrame | Parts | None = None,
    population: Parts | None = None,
) -> ChurnScores:
    """Calibrated churn probability, risk band, value at risk and drivers for every customer.

    ``clv`` is the valuation's ``customer_id, clv`` and optionally ``lifecycle_stage``. A
    customer whose stage is :data:`LOST_STAGE` is already lost: band ``lost``,
    ``value_at_risk`` 0, ``retention_profit`` null and no drivers; ``churn_probability``
    stays the model's. Without ``clv`` (or its ``lifecycle_stage``) nobody is lost and
    ``value_at_risk`` and ``retention_profit`` are null.

    Bands: with ``clv`` and ``retention.bands == "profit"`` (the default terms when
    ``retention`` is None), ``high`` is the profit-optimal contact set (positive
    ``retention_profit``, see :func:`churn.profit.expected_profit`) and the rest are
    ``medium`` / ``low`` by ``cfg.risk_thresholds[0]``; otherwise ``cfg.risk_thresholds``
    alone (:func:`risk_band`).

    Drivers (top ``cfg.n_drivers`` positive TreeSHAP contributions, largest first) are
    computed only for customers not lost with probability >= ``cfg.drivers_min_probability``
    or in the top ``cfg.drivers_top_n`` of them by value at risk (by probability without
    ``clv``), at most ``cfg.drivers_max`` of them (the highest value at risk;
    :func:`churn.drivers.whom_to_explain`); the others get an empty list. ``churn_reasons``
    says the same drivers in words, comparing each value with the quartiles of ``population``
    (None: ``profile``, the scored population).

    Where everyone lies: ``profile`` may be :class:`~crm_engine.parts.Parts` (the executors'
    files of everyone's profile with Spark); ``predictions`` (:func:`predict_customers`'), and
    ``clv``, then the parts mapped from it (each part's customers beside the profile's). Given
    as frames, predictions in any row order are matched by customer (refused when they are not
    of exactly the profile's customers); None: computed here. Every step over everyone is an
    aggregate of the parts or a map of them: the risk columns, whom to explain, their profile
    rows (at most ``cfg.drivers_max``, explained here), and the drivers put beside the risk.
    A plan (the run's profile, waiting in a file) is read a slice at a time.
    """
    terms = retention or RetentionConfig()
    rows = profile if isinstance(profile, Parts) else FrameParts(profile)
    if predictions is None:
        predicted: Parts = rows.map(functools.partial(predict_customers, churn_model=churn_model))
    elif isinstance(predictions, pl.DataFrame):
        ids = rows.plan().select("customer_id").collect()
        predicted = FrameParts(in_id_order(ids, predictions))
    else:
        predicted = predictions
    predicted = predicted.select(["customer_id", "churn_probability"])
    valued = clv is not None
    if clv is not None:
        values = clv if isinstance(clv, Parts) else FrameParts(_checked_values(clv))
        schema = values.plan().collect_schema()
        wanted = [c for c in ("customer_id", "clv", "lifecycle_stage") if c in schema]
        predicted = predicted.join(values.select(wanted))
    risk = predicted.map(
        functools.partial(risk_slice, thresholds=cfg.risk_thresholds, terms=terms, valued=valued)
    )
    key = "value_at_risk" if valued else "churn_probability"
    not_lost = pl.col("churn_risk_band") != LOST_BAND
    n, n_lost = count_rows(risk, pl.lit(True), ~not_lost)
    chosen = whom_to_explain(
        risk, cfg.drivers_min_probability, cfg.drivers_top_n, key, cfg.drivers_max, not_lost
    )
    columns = rows.plan().collect_schema().names()
    flags = risk.select(
        list(dict.fromkeys(["customer_id", "churn_probability", "churn_risk_band", key]))
    )
    subset = gather_rows(rows.join(flags), chosen, columns).sort("customer_id")
    names = churn_model.feature_names_in_
    abs_sum = np.zeros(len(names))
    reasons: list[pl.Series] = []
    for batch in iter_batches(subset, DRIVER_BATCH_ROWS):
        if batch.height == 0:
            continue
        contrib = churn_model.contributions(batch)
        abs_sum += np.abs(contrib[:, : len(names)]).sum(axis=0)
        reasons.append(top_drivers(contrib, names, cfg.n_drivers))
    drivers = pl.concat(reasons) if reasons else pl.Series("churn_drivers", [], dtype=DRIVERS_DTYPE)
    words = reasons_in_words(
        drivers,
        subset,
        rows if population is None else population,
        churn_model.feature_spec_.categorical,
        customers=n,
    )
    explained = subset.select("customer_id").with_columns(
        drivers.alias("churn_drivers"), words.alias("churn_reasons")
    )
    importance = pl.DataFrame(
        {"feature": names, "mean_abs_contribution": abs_sum / max(subset.height, 1)},
        schema={"feature": pl.String, "mean_abs_contribution": pl.Float64},
    ).sort("mean_abs_contribution", descending=True, maintain_order=True)
    return ChurnScores(
        parts=risk.map(functools.partial(_with_drivers, explained=explained)),
        importance=importance,
        n_explained=subset.height,
        n_lost=n_lost,
    )


def _bands_by_stage(frame: pl.DataFrame) -> pl.DataFrame:
    """Customers of a slice by lifecycle stage (``unknown`` without one) and risk band."""
    stage = pl.col("lifecycle_stage").cast(pl.String).fill_null("unknown")
    return frame.group_by(stage, "churn_risk_band").len()


def lifecycle_by_band(
    churn_scores: pl.DataFrame | Parts,
    values: pl.DataFrame | Parts,
    stages: Sequence[str] = (),
) -> dict[str, dict[str, int]]:
    """Customers by lifecycle stage (valuation) and churn risk band: how the two views relate,
    counted part by part where the scores lie.

    Parameters
    ----------
    churn_scores
        ``customer_id, churn_risk_band`` (:attr:`ChurnScores.frame`, or its parts).
    values
        ``customer_id, lifecycle_stage`` of the same customers (the valuation's, or its
        parts: the same parts as the scores', mapped from the same profile).
    stages
        Stages listed first, in this order, with zero rows when absent (``valuation.STAGES``);
        other stages follow alphabetically, a customer without a stage as ``unknown``.

    Returns
    -------
    dict
        ``{lifecycle_stage: {band: customers}}``, every band of ``low, medium, high, lost``
        present; the counts sum to the scored customers.
    """
    scores = churn_scores if isinstance(churn_scores, Parts) else FrameParts(churn_scores)
    stage = values if isinstance(values, Parts) else FrameParts(values)
    counts = (
        scores.select(["customer_id", "churn_risk_band"])
        .join(stage.select(["customer_id", "lifecycle_stage"]))
        .aggregate(_bands_by_stage)
        .group_by("lifecycle_stage", pl.col("churn_risk_band").cast(pl.String))
        .agg(pl.col("len").sum())
    )
    bands = (*RISK_BANDS, LOST_BAND)
    table: dict[str, dict[str, int]] = {s: dict.fromkeys(bands, 0) for s in stages}
    for row in counts.sort("lifecycle_stage", "churn_risk_band").iter_rows(named=True):
        cells = table.setdefault(row["lifecycle_stage"], dict.fromkeys(bands, 0))
        cells[row["churn_risk_band"]] = int(row["len"])
    return table


def score_customers(
    profile: pl.DataFrame | pl.LazyFrame,
    churn_model: ChurnModel,
    loyalty_model: LoyaltyModel | None,
    cfg: ChurnConfig,
    clv: pl.DataFrame | None = None,
    retention: RetentionConfig | None = None,
) -> pl.DataFrame:
    """Churn and loyalty columns of the scores contract, one row per profile row.

    Parameters
    ----------
    profile
        Customer profile at ``as_of`` (``features.build_profile``), collected.
    churn_model
        Fitted churn model.
    loyalty_model
        Fitted loyalty model, or None (loyalty columns null).
    cfg
        Churn section of the config (risk thresholds, driver selection).
    clv
        Optional ``customer_id, clv`` frame, with ``lifecycle_stage`` when known: gives
        ``value_at_risk`` and ``retention_profit``, ranks drivers and marks lost customers
        (see :func:`score_churn`).
    retention
        Offer terms (``[retention]``) of ``retention_profit`` and the profit bands.

    Returns
    -------
    polars.DataFrame
        :data:`CHURN_OUTPUT_COLUMNS` with the ``crm.scores/v1`` dtypes.
    """
    if "customer_id" not in profile.collect_schema():
        raise ValueError("the profile needs a customer_id column")
    scored = score_churn(profile, churn_model, cfg, clv, retention)
    return add_loyalty(scored.frame, profile, loyalty_model)


def loyalty_slice(batch: pl.DataFrame, classes: Sequence[str] | None) -> pl.DataFrame:
    """A slice of churn scores with ``loyalty_score`` (promoter probability) and
    ``loyalty_class`` (argmax) from the loyalty model's ``loyalty_<class>`` probabilities
    beside them (:func:`predict_customers`), in :data:`CHURN_OUTPUT_COLUMNS`; both null
    without a loyalty model (``classes`` None)."""
    if classes is None:
        columns = [
            pl.lit(None, dtype=pl.Float64).alias("loyalty_score"),
            pl.lit(None, dtype=pl.String).alias("loyalty_class"),
        ]
        return batch.with_columns(columns).select(CHURN_OUTPUT_COLUMNS)
    proba = batch.select(f"{LOYALTY_PREFIX}{c}" for c in classes).to_numpy()
    proba = proba.reshape(batch.height, len(classes))
    return batch.with_columns(
        pl.Series("loyalty_score", proba[:, list(classes).index("promoter")], dtype=pl.Float64),
        labels_at("loyalty_class", classes, proba.argmax(axis=1)),
    ).select(CHURN_OUTPUT_COLUMNS)


@overload
def add_loyalty(
    churn_scores: pl.DataFrame,
    profile: pl.DataFrame | pl.LazyFrame,
    loyalty_model: LoyaltyModel | None,
    predictions: pl.DataFrame | Parts | None = None,
) -> pl.DataFrame: ...


@overload
def add_loyalty(
    churn_scores: Parts,
    profile: pl.DataFrame | pl.LazyFrame,
    loyalty_model: LoyaltyModel | None,
    predictions: pl.DataFrame | Parts | None = None,
) -> Parts: ...


def add_loyalty(
    churn_scores: pl.DataFrame | Parts,
    profile: pl.DataFrame | pl.LazyFrame,
    loyalty_model: LoyaltyModel | None,
    predictions: pl.DataFrame | Parts | None = None,
) -> pl.DataFrame | Parts:
    """Append ``loyalty_score`` (promoter probability) and ``loyalty_class`` (argmax):
    :func:`loyalty_slice` of each part of ``churn_scores`` where it lies.

    ``churn_scores`` is :attr:`ChurnScores.frame` for the same ``profile`` rows (a frame gives
    a frame), or :attr:`ChurnScores.parts` (parts give parts, mapped where they lie); without a
    loyalty model both columns are null. ``predictions``: as for :func:`score_churn`, with the
    loyalty model's (frames matched by customer; None: computed here of ``profile``, a plan a
    slice at a time).
    """
    scores = churn_scores if isinstance(churn_scores, Parts) else FrameParts(churn_scores)
    if isinstance(churn_scores, pl.DataFrame):
        rows = frame_height(profile)
        if churn_scores.height != rows:
            raise ValueError(f"churn scores have {churn_scores.height} rows, the profile {rows}")
    classes = None if loyalty_model is None else loyalty_model.classes_
    if loyalty_model is not None:
        wanted = ["customer_id", *(f"{LOYALTY_PREFIX}{c}" for c in loyalty_model.classes_)]
        if predictions is None:
            predictions = predict_in_slices(profile, None, loyalty_model)
        if isinstance(predictions, pl.DataFrame):
            ids = scores.plan().select("customer_id").collect()
            predictions = FrameParts(in_id_order(ids, predictions))
        scores = scores.join(predictions.select(wanted))
    out = scores.map(functools.partial(loyalty_slice, classes=classes))
    return out if isinstance(churn_scores, Parts) else out.plan().collect()
