"""The logistic-regression churn learner, and ``churn.model = "auto"`` choosing between two."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from churn import ChurnModel, score_churn, train_churn
from churn.linear import C_GRID, FILE
from churn.model import validation_halves
from crm_engine.config import ChurnConfig

LABEL = "churned_within_90d"


def test_logistic_regression_close_to_the_logistic_truth(
    logistic_model: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    # the synthetic truth is a logistic model of a few columns: the linear learner should
    # come near the oracle on the untouched report half
    _, valid, p_true = cuts
    _, report = validation_halves(valid, 0)
    y = valid[LABEL].to_numpy()[report]
    m = logistic_model.metrics_
    assert m["roc_auc"] >= roc_auc_score(y, p_true[report]) - 0.02
    assert m["brier"] <= brier_score_loss(y, p_true[report]) * 1.05
    assert logistic_model.params_["C"] in (0.01, 0.1, 1.0) and logistic_model.best_iteration_ == 0


def test_the_warm_started_c_path_agrees_with_cold_fits(
    logistic_model: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    # fit_linear walks C_GRID smallest first, each Newton fit warm-started from the last; a
    # cold lbfgs fit per C, run to a tight tolerance (the optimum), must give the same C, and
    # the same weights to 1e-3 (they are ~0.5 at most here; the old cold lbfgs fits at their
    # default tolerance were only within ~5e-3 of that optimum themselves)
    train, valid, _ = cuts
    lin, spec = logistic_model.learner_.linear_, logistic_model.feature_spec_
    fit, _ = validation_halves(valid, 0)
    z = lin.transform(spec.to_pandas(train))
    z_stop = lin.transform(spec.to_pandas(valid.filter(pl.Series(fit))))
    y, y_stop = train[LABEL].to_numpy(), valid[LABEL].to_numpy()[fit]
    cold = {c: LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(z, y) for c in C_GRID}
    losses = {c: log_loss(y_stop, m.predict_proba(z_stop)[:, 1]) for c, m in cold.items()}
    assert lin.C == min(losses, key=losses.__getitem__)
    ref = cold[lin.C]
    np.testing.assert_allclose(lin.coef, ref.coef_[0], rtol=0, atol=1e-3)
    assert lin.intercept == pytest.approx(ref.intercept_[0], abs=1e-3)
    p = 1.0 / (1.0 + np.exp(-(z_stop @ lin.coef + lin.intercept)))
    np.testing.assert_allclose(p, ref.predict_proba(z_stop)[:, 1], rtol=0, atol=1e-4)


def test_a_features_contribution_moves_with_its_value(
    logistic_model: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    # (that the contributions add up to the log-odds: tests/churn/test_drivers.py)
    _, valid, _ = cuts
    rows = valid.head(300)
    contrib = logistic_model.contributions(rows)
    # the complaint count raises risk in the truth, and so in the weights
    j = logistic_model.feature_names_in_.index("complaints_90d")
    order = np.argsort(rows["complaints_90d"].to_numpy())
    assert contrib[order[-1], j] > contrib[order[0], j]


def test_saved_as_data_and_reloaded_identically(
    logistic_model: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    _, valid, _ = cuts
    logistic_model.save(tmp_path / "m")
    state = json.loads((tmp_path / "m" / FILE).read_text())  # JSON numbers, no pickle
    assert len(state["coef"]) == len(state["source"]) == len(state["background"])
    assert not (tmp_path / "m" / "booster.txt").exists()
    again = ChurnModel.load(tmp_path / "m")
    assert again.learner == "logistic"
    np.testing.assert_array_equal(again.predict_churn(valid), logistic_model.predict_churn(valid))
    np.testing.assert_array_equal(
        again.contributions(valid.head(50)), logistic_model.contributions(valid.head(50))
    )


def test_unseen_and_missing_values_score(
    logistic_model: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    _, valid, _ = cuts
    odd = valid.head(20).with_columns(
        pl.lit("region_never_seen").alias("region"),
        pl.lit(None, dtype=pl.Float64).alias("spend_trend"),
    )
    p = logistic_model.predict_churn(odd)
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()
    drivers = score_churn(odd, logistic_model, ChurnConfig(drivers_min_probability=0.0)).frame
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


def test_the_logged_parameters_name_their_learner(
    logistic_model: ChurnModel, churn_model: ChurnModel
) -> None:
    """``ChurnTraining.params`` prefixes each learner's own parameters by the learner's
    declared prefix (the model never asks which learner it holds)."""
    import datetime as dt

    from churn.frames import TrainingCuts
    from churn.training import ChurnTraining

    cuts = TrainingCuts((dt.date(2024, 4, 1),), dt.date(2024, 7, 1))
    for model, prefix in ((churn_model, "lgbm"), (logistic_model, "logistic")):
        params = ChurnTraining(model, None, cuts, 90, pl.DataFrame()).params()
        own = {k.split(".", 1)[1] for k in params if k.startswith(f"{prefix}.")}
        assert own == set(model.params_) and own, params


def test_the_model_builds_the_matrix_of_the_sampled_rows_only(
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the row cap the model hands the learner only the sampled rows' matrix (at 1M
    customers the pandas matrix of all 499,001 rows took 0.3 GB to fit on 100,000): the same
    fit as sampling the whole matrix inside ``fit_linear``."""
    import churn.linear

    train, valid, _ = cuts
    cap = train.height // 3
    monkeypatch.setattr(churn.linear, "LOGISTIC_MAX_ROWS", cap)
    monkeypatch.setattr(
        churn.linear.LogisticLearner,
        "training_rows",
        staticmethod(lambda n, seed: churn.linear.sampled_rows(n, seed, cap)),
    )
    cfg = ChurnConfig(model="logistic")
    sampled = train_churn(train, valid, cfg)
    assert sampled.params_["train_rows"] == cap
    spec, fit = sampled.feature_spec_, validation_halves(valid, 0)[0]
    whole = churn.linear.fit_linear(
        spec.to_pandas(train),
        train[LABEL].cast(pl.Int8).to_numpy(),
        spec.to_pandas(valid.filter(pl.Series(fit))),
        valid[LABEL].cast(pl.Int8).to_numpy()[fit],
        spec,
        max_rows=cap,
    )
    np.testing.assert_array_equal(sampled.learner_.linear_.coef, whole.coef)
    assert sampled.learner_.linear_.intercept == whole.intercept
