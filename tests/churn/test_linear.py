"""The logistic-regression churn learner, and ``churn.model = "auto"`` choosing between two."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from churn import ChurnModel, score_churn, train_churn
from churn.linear import FILE
from churn.model import validation_halves
from crm_engine.config import ChurnConfig

LABEL = "churned_within_90d"


@pytest.fixture(scope="module")
def logistic(cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]) -> ChurnModel:
    train, valid, _ = cuts
    return ChurnModel(seed=0, learner="logistic").fit(train, valid)


def test_logistic_regression_close_to_the_logistic_truth(
    logistic: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    # the synthetic truth is a logistic model of a few columns: the linear learner should
    # come near the oracle on the untouched report half
    _, valid, p_true = cuts
    _, report = validation_halves(valid, 0)
    y = valid[LABEL].to_numpy()[report]
    m = logistic.metrics_
    assert m["roc_auc"] >= roc_auc_score(y, p_true[report]) - 0.02
    assert m["brier"] <= brier_score_loss(y, p_true[report]) * 1.05
    assert logistic.params_["C"] in (0.01, 0.1, 1.0) and logistic.best_iteration_ == 0


def test_contributions_add_up_to_the_log_odds(
    logistic: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    _, valid, _ = cuts
    rows = valid.head(300)
    contrib = logistic.contributions(rows)
    assert contrib.shape == (300, logistic.n_features_in_ + 1)
    raw = logistic.predict_raw(rows)
    np.testing.assert_allclose(contrib.sum(axis=1), np.log(raw / (1 - raw)), atol=1e-9)
    # a feature's contribution moves with its value only: the complaint count raises risk
    names = logistic.feature_names_in_
    j = names.index("complaints_90d")
    order = np.argsort(rows["complaints_90d"].to_numpy())
    assert contrib[order[-1], j] > contrib[order[0], j]


def test_saved_as_data_and_reloaded_identically(
    logistic: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    _, valid, _ = cuts
    logistic.save(tmp_path / "m")
    state = json.loads((tmp_path / "m" / FILE).read_text())  # JSON numbers, no pickle
    assert len(state["coef"]) == len(state["source"]) == len(state["background"])
    assert not (tmp_path / "m" / "booster.txt").exists()
    again = ChurnModel.load(tmp_path / "m")
    assert again.learner == "logistic"
    np.testing.assert_array_equal(again.predict_churn(valid), logistic.predict_churn(valid))
    np.testing.assert_array_equal(
        again.contributions(valid.head(50)), logistic.contributions(valid.head(50))
    )


def test_unseen_and_missing_values_score(
    logistic: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    _, valid, _ = cuts
    odd = valid.head(20).with_columns(
        pl.lit("region_never_seen").alias("region"),
        pl.lit(None, dtype=pl.Float64).alias("spend_trend"),
    )
    p = logistic.predict_churn(odd)
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()
    drivers = score_churn(odd, logistic, ChurnConfig(drivers_min_probability=0.0)).frame
    assert (drivers["churn_drivers"].list.len() > 0).all()


def test_auto_keeps_the_better_learner_and_reports_both(
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
) -> None:
    train, valid, _ = cuts
    cfg = ChurnConfig.model_validate({"lightgbm": {"n_estimators": 200}})
    best = train_churn(train, valid, cfg)
    m = best.metrics_
    assert m["model_auto"] == 1.0
    chosen, other = best.learner, {"lightgbm": "logistic", "logistic": "lightgbm"}[best.learner]
    assert m[f"{chosen}.selection_roc_auc"] >= m[f"{other}.selection_roc_auc"]
    assert m[f"{chosen}.roc_auc"] == m["roc_auc"]
    only = train_churn(train, valid, cfg.model_copy(update={"model": other}))
    assert only.learner == other and "model_auto" not in only.metrics_
    assert only.metrics_["roc_auc"] == pytest.approx(m[f"{other}.roc_auc"])
