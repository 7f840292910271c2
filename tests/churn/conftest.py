"""Shared fixtures: synthetic profile frames at two cuts with a known churn truth."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from churn import ChurnModel, LoyaltyModel
from crm_engine.config import ChurnConfig, LoyaltyConfig
from tests.churn.synth import make_profile

N_SYNTH = 20_000


@pytest.fixture(scope="session")
def cuts() -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """(train frame, validation frame, true churn probability of the validation frame)."""
    train, _ = make_profile(N_SYNTH, seed=11)
    valid, p_valid = make_profile(N_SYNTH, seed=12, id_offset=1_000_000)
    return train, valid, p_valid


@pytest.fixture(scope="session")
def churn_model(cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]) -> ChurnModel:
    train, valid, _ = cuts
    cfg = ChurnConfig()
    return ChurnModel(
        horizon_days=cfg.horizon_days,
        lgbm_params=cfg.lightgbm.model_dump(),
        early_stopping_rounds=cfg.early_stopping_rounds,
        seed=0,
    ).fit(train, valid)


@pytest.fixture(scope="session")
def logistic_model(cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]) -> ChurnModel:
    """The logistic-regression learner on the same cuts (``churn.model = "logistic"``)."""
    train, valid, _ = cuts
    return ChurnModel(seed=0, learner="logistic").fit(train, valid)


@pytest.fixture(scope="session")
def loyalty_model(cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]) -> LoyaltyModel:
    train, valid, _ = cuts
    cfg = LoyaltyConfig()
    return LoyaltyModel(
        lgbm_params=cfg.lightgbm.model_dump(),
        early_stopping_rounds=cfg.early_stopping_rounds,
        seed=0,
    ).fit(train, valid)
