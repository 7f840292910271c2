"""Churn and loyalty models: train from point-in-time frames, score a profile into the contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from churn.drivers import (
    DRIVERS_DTYPE,
    drivers_column,
    reasons_column,
    reasons_in_words,
    select_for_drivers,
    top_drivers,
)
from churn.loyalty import LoyaltyModel
from churn.model import LEARNERS, ChurnModel, iter_batches
from churn.profit import expected_profit
from crm_engine.config import ChurnConfig, LoyaltyConfig, RetentionConfig
from crm_engine.contracts import LOST_BAND, LOST_STAGE, SCORE_COLUMNS, labels_at, score_values
from crm_engine.io import frame_height, in_id_order
from crm_engine.parts import Parts

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
    frame
        ``customer_id, churn_probability, churn_risk_band, churn_drivers, churn_reasons,
        value_at_risk, retention_profit`` and ``network_value, value_at_risk_network`` (null
        here, see :func:`churn.contagion.with_network_value`).
    importance
        ``feature, mean_abs_contribution`` sorted descending (empty when nobody explained).
    n_explained
        Customers whose drivers were computed.
    n_lost
        Customers in band ``lost`` (0 without lifecycle stages).
    """

    frame: pl.DataFrame
    importance: pl.DataFrame
    n_explained: int
    n_lost: int = 0


def _values_columns(profile: pl.DataFrame, values: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``clv`` (NaN where unknown) and the lost mask, in the profile's row order."""
    for c in ("customer_id", "clv"):
        if c not in values.schema:
            raise ValueError(f"the clv frame needs columns customer_id and clv; missing {c!r}")
    dup = values.height - values.get_column("customer_id").n_unique()
    if dup:
        raise ValueError(f"the clv frame has {dup} duplicate customer_id values")
    stage = pl.col("lifecycle_stage") if "lifecycle_stage" in values.schema else pl.lit(None)
    joined = profile.select("customer_id").join(
        values.select(
            "customer_id",
            pl.col("clv").cast(pl.Float64),
            (stage == LOST_STAGE).fill_null(False).alias("lost"),
        ),
        on="customer_id",
        how="left",
        maintain_order="left",
    )
    return (
        joined.get_column("clv").fill_null(np.nan).to_numpy(),
        joined.get_column("lost").fill_null(False).to_numpy(),
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
    (:meth:`pipelines.profiles.ProfileCache.map`). :func:`score_churn` and
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


def _rows(profile: pl.DataFrame | pl.LazyFrame, mask: np.ndarray) -> pl.DataFrame:
    """The rows of ``profile`` where ``mask`` holds (of a plan: gathered a slice at a time)."""
    if isinstance(profile, pl.DataFrame):
        return profile.filter(pl.Series(mask))
    parts, start = [], 0
    for batch in iter_batches(profile):
        parts.append(batch.filter(pl.Series(mask[start : start + batch.height])))
        start += batch.height
    return pl.concat(parts)


def score_churn(
    profile: pl.DataFrame | pl.LazyFrame,
    churn_model: ChurnModel,
    cfg: ChurnConfig,
    clv: pl.DataFrame | None = None,
    retention: RetentionConfig | None = None,
    predictions: pl.DataFrame | None = None,
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
    ``clv``), at most ``cfg.drivers_max`` of them (the highest value at risk); the others
    get an empty list. ``churn_reasons`` says the same drivers in words,
    comparing each value with the quartiles of this ``profile`` (the scored population).

    ``predictions`` are :func:`predict_customers`' of these customers (any row order), computed
    where the profile lies (the executors, with the Spark backend); None: computed here.
    ``population`` is the same profile where it lies (:class:`~crm_engine.parts.Parts`: the
    executors' files with Spark), for the reasons' quartiles (of a bounded sample,
    :func:`churn.drivers.population_quartiles`); None: ``profile``.

    A plan (the run's profile, waiting in a file) is read a slice at a time: at 10M customers
    scoring then holds one slice of the profile, not all 4.3 GB of it.
    """
    terms = retention or RetentionConfig()
    ids = profile.lazy().select("customer_id").collect()
    if predictions is None:
        predictions = predict_in_slices(profile, churn_model)
    p = in_id_order(ids, predictions).get_column("churn_probability").to_numpy()
    lost = np.zeros(p.size, dtype=bool)
    var = None
    gain = np.full(p.size, np.nan)
    if clv is not None:
        clv_values, lost = _values_columns(ids, clv)
        var = np.where(lost, 0.0, p * clv_values)
        gain = np.where(lost, np.nan, expected_profit(p, clv_values, terms))
    explained = np.zeros(p.size, dtype=bool)
    explained[~lost] = select_for_drivers(
        p[~lost],
        cfg.drivers_min_probability,
        cfg.drivers_top_n,
        None if var is None else var[~lost],
        cfg.drivers_max,
    )
    names = churn_model.feature_names_in_
    subset = _rows(profile, explained)
    abs_sum = np.zeros(len(names))
    reasons: list[pl.Series] = []
    for batch in iter_batches(subset, DRIVER_BATCH_ROWS):
        if batch.height == 0:
            continue
        contrib = churn_model.contributions(batch)
        abs_sum += np.abs(contrib[:, : len(names)]).sum(axis=0)
        reasons.append(top_drivers(contrib, names, cfg.n_drivers))
    n_explained = int(explained.sum())
    explained_drivers = (
        pl.concat(reasons) if reasons else pl.Series("churn_drivers", [], dtype=DRIVERS_DTYPE)
    )
    drivers = drivers_column(p.size, explained, explained_drivers)
    words = reasons_in_words(
        explained_drivers,
        subset,
        profile if population is None else population,
        churn_model.feature_spec_.categorical,
        customers=p.size,
    )
    band = (
        profit_band(p, gain, cfg.risk_thresholds[0])
        if clv is not None and terms.bands == "profit"
        else risk_band(p, cfg.risk_thresholds)
    )
    frame = pl.DataFrame(
        [
            ids.get_column("customer_id"),
            pl.Series("churn_probability", p, dtype=pl.Float64),
            band.zip_with(pl.Series(~lost), pl.repeat(LOST_BAND, p.size, eager=True)),
            drivers,
            reasons_column(p.size, explained, words),
            pl.Series(
                "value_at_risk",
                var if var is not None else np.full(p.size, np.nan),
                dtype=pl.Float64,
            ).fill_nan(None),
            pl.Series("retention_profit", gain, dtype=pl.Float64).fill_nan(None),
            # Filled by churn.contagion.with_network_value when the run values contacts.
            pl.repeat(None, p.size, dtype=pl.Float64, eager=True).alias("network_value"),
            pl.repeat(None, p.size, dtype=pl.Float64, eager=True).alias("value_at_risk_network"),
        ]
    )
    importance = pl.DataFrame(
        {"feature": names, "mean_abs_contribution": abs_sum / max(n_explained, 1)},
        schema={"feature": pl.String, "mean_abs_contribution": pl.Float64},
    ).sort("mean_abs_contribution", descending=True, maintain_order=True)
    return ChurnScores(
        frame=frame, importance=importance, n_explained=n_explained, n_lost=int(lost.sum())
    )


def lifecycle_by_band(
    churn_scores: pl.DataFrame, values: pl.DataFrame, stages: Sequence[str] = ()
) -> dict[str, dict[str, int]]:
    """Customers by lifecycle stage (valuation) and churn risk band: how the two views relate.

    Parameters
    ----------
    churn_scores
        ``customer_id, churn_risk_band`` (:attr:`ChurnScores.frame`).
    values
        ``customer_id, lifecycle_stage`` of the same customers.
    stages
        Stages listed first, in this order, with zero rows when absent (``valuation.STAGES``);
        other stages follow alphabetically, a customer without a stage as ``unknown``.

    Returns
    -------
    dict
        ``{lifecycle_stage: {band: customers}}``, every band of ``low, medium, high, lost``
        present; the counts sum to ``churn_scores.height``.
    """
    bands = (*RISK_BANDS, LOST_BAND)
    counts = (
        churn_scores.select("customer_id", "churn_risk_band")
        .join(
            values.select("customer_id", "lifecycle_stage"),
            on="customer_id",
            how="left",
            maintain_order="left",
        )
        .group_by(pl.col("lifecycle_stage").fill_null("unknown"), "churn_risk_band")
        .len()
    )
    table: dict[str, dict[str, int]] = {s: dict.fromkeys(bands, 0) for s in stages}
    for row in counts.sort("lifecycle_stage").iter_rows(named=True):
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


def add_loyalty(
    churn_scores: pl.DataFrame,
    profile: pl.DataFrame | pl.LazyFrame,
    loyalty_model: LoyaltyModel | None,
    predictions: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Append ``loyalty_score`` (promoter probability) and ``loyalty_class`` (argmax).

    ``churn_scores`` is :attr:`ChurnScores.frame` for the same ``profile`` rows, in order
    (a plan is read a slice at a time); without a loyalty model both columns are null.
    ``predictions``: as for :func:`score_churn`, with the loyalty model's.
    """
    rows = frame_height(profile)
    if churn_scores.height != rows:
        raise ValueError(f"churn scores have {churn_scores.height} rows, the profile {rows}")
    if loyalty_model is not None:
        classes = loyalty_model.classes_
        if predictions is None:
            predictions = predict_in_slices(profile, None, loyalty_model)
        ordered = in_id_order(churn_scores.select("customer_id"), predictions)
        proba = ordered.select(f"{LOYALTY_PREFIX}{c}" for c in classes).to_numpy()
        loyalty_score = pl.Series("loyalty_score", proba[:, classes.index("promoter")])
        loyalty_class = labels_at("loyalty_class", classes, proba.argmax(axis=1))
    else:
        n = rows
        loyalty_score = pl.repeat(None, n, dtype=pl.Float64, eager=True).alias("loyalty_score")
        loyalty_class = pl.repeat(None, n, dtype=pl.String, eager=True).alias("loyalty_class")
    return churn_scores.with_columns(loyalty_score, loyalty_class).select(CHURN_OUTPUT_COLUMNS)
