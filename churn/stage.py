"""The churn stage: train from point-in-time frames, score a profile into contract columns."""

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
from churn.model import ChurnModel, iter_batches
from crm_engine.config import ChurnConfig, LoyaltyConfig

RISK_BANDS: tuple[str, str, str] = ("low", "medium", "high")
CHURN_OUTPUT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "churn_probability",
    "churn_risk_band",
    "churn_drivers",
    "churn_reasons",
    "value_at_risk",
    "loyalty_score",
    "loyalty_class",
)
DRIVER_BATCH_ROWS = 50_000


def train_churn(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    cfg: ChurnConfig,
    features: Sequence[str] | None = None,
) -> ChurnModel:
    """Fit a :class:`ChurnModel` on an earlier cut, validated out of time on a later one.

    Parameters
    ----------
    train
        Profile at the training cut joined with ``churned_within_<h>d``.
    valid
        Profile at the validation cut (a later date) joined with the same label.
    cfg
        Churn section of the pipeline config.
    features
        The profile's declared feature columns (see :class:`ChurnModel`).
    """
    return ChurnModel(
        horizon_days=cfg.horizon_days,
        lgbm_params=cfg.lightgbm.model_dump(),
        early_stopping_rounds=cfg.early_stopping_rounds,
        calibration=cfg.calibration,
        extra_features=tuple(cfg.extra_features),
        seed=cfg.seed,
        features=features,
    ).fit(train, valid)


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
    return pl.Series("churn_risk_band", np.asarray(RISK_BANDS, dtype=object)[idx], dtype=pl.String)


@dataclass(frozen=True)
class ChurnScores:
    """Churn scores and the global importance over the explained customers.

    Attributes
    ----------
    frame
        ``customer_id, churn_probability, churn_risk_band, churn_drivers, churn_reasons,
        value_at_risk``.
    importance
        ``feature, mean_abs_contribution`` sorted descending (empty when nobody explained).
    n_explained
        Customers whose drivers were computed.
    """

    frame: pl.DataFrame
    importance: pl.DataFrame
    n_explained: int


def _clv_values(profile: pl.DataFrame, clv: pl.DataFrame) -> np.ndarray:
    for c in ("customer_id", "clv"):
        if c not in clv.schema:
            raise ValueError(f"the clv frame needs columns customer_id and clv; missing {c!r}")
    dup = clv.height - clv.get_column("customer_id").n_unique()
    if dup:
        raise ValueError(f"the clv frame has {dup} duplicate customer_id values")
    return (
        profile.select("customer_id")
        .join(
            clv.select("customer_id", pl.col("clv").cast(pl.Float64)),
            on="customer_id",
            how="left",
            maintain_order="left",
        )
        .get_column("clv")
        .fill_null(np.nan)
        .to_numpy()
    )


def score_churn(
    profile: pl.DataFrame,
    churn_model: ChurnModel,
    cfg: ChurnConfig,
    clv: pl.DataFrame | None = None,
) -> ChurnScores:
    """Calibrated churn probability, risk band, value at risk and drivers for every customer.

    Drivers (top ``cfg.n_drivers`` positive TreeSHAP contributions, largest first) are
    computed only for customers with probability >= ``cfg.drivers_min_probability`` or in the
    top ``cfg.drivers_top_n`` by value at risk (by probability without ``clv``); the others
    get an empty list. ``churn_reasons`` says the same drivers in words, comparing each value
    with the quartiles of this ``profile`` (the scored population).
    """
    p = churn_model.predict_churn(profile)
    var = None if clv is None else p * _clv_values(profile, clv)
    explained = select_for_drivers(p, cfg.drivers_min_probability, cfg.drivers_top_n, var)
    names = churn_model.feature_names_in_
    subset = profile.filter(pl.Series(explained))
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
    drivers = drivers_column(profile.height, explained, explained_drivers)
    words = reasons_in_words(
        explained_drivers, subset, profile, churn_model.feature_spec_.categorical
    )
    frame = pl.DataFrame(
        [
            profile.get_column("customer_id"),
            pl.Series("churn_probability", p, dtype=pl.Float64),
            risk_band(p, cfg.risk_thresholds),
            drivers,
            reasons_column(profile.height, explained, words),
            pl.Series(
                "value_at_risk",
                var if var is not None else np.full(p.size, np.nan),
                dtype=pl.Float64,
            ).fill_nan(None),
        ]
    )
    importance = pl.DataFrame(
        {"feature": names, "mean_abs_contribution": abs_sum / max(n_explained, 1)},
        schema={"feature": pl.String, "mean_abs_contribution": pl.Float64},
    ).sort("mean_abs_contribution", descending=True, maintain_order=True)
    return ChurnScores(frame=frame, importance=importance, n_explained=n_explained)


def score_customers(
    profile: pl.DataFrame,
    churn_model: ChurnModel,
    loyalty_model: LoyaltyModel | None,
    cfg: ChurnConfig,
    clv: pl.DataFrame | None = None,
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
        Optional ``customer_id, clv`` frame: gives ``value_at_risk`` and ranks drivers.

    Returns
    -------
    polars.DataFrame
        ``customer_id, churn_probability, churn_risk_band, churn_drivers, churn_reasons,
        value_at_risk, loyalty_score, loyalty_class`` with the ``crm.scores/v1`` dtypes.
    """
    if "customer_id" not in profile.schema:
        raise ValueError("the profile needs a customer_id column")
    return add_loyalty(score_churn(profile, churn_model, cfg, clv).frame, profile, loyalty_model)


def add_loyalty(
    churn_scores: pl.DataFrame, profile: pl.DataFrame, loyalty_model: LoyaltyModel | None
) -> pl.DataFrame:
    """Append ``loyalty_score`` (promoter probability) and ``loyalty_class`` (argmax).

    ``churn_scores`` is :attr:`ChurnScores.frame` for the same ``profile`` rows, in order;
    without a loyalty model both columns are null.
    """
    if churn_scores.height != profile.height:
        raise ValueError(
            f"churn scores have {churn_scores.height} rows, the profile {profile.height}"
        )
    if loyalty_model is not None:
        proba = loyalty_model.predict_proba(profile)
        classes = loyalty_model.classes_
        loyalty_score = proba[:, classes.index("promoter")]
        loyalty_class = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    else:
        loyalty_score = np.full(profile.height, None)
        loyalty_class = np.full(profile.height, None)
    return churn_scores.with_columns(
        pl.Series("loyalty_score", loyalty_score, dtype=pl.Float64),
        pl.Series("loyalty_class", loyalty_class, dtype=pl.String),
    ).select(CHURN_OUTPUT_COLUMNS)
