"""ChurnModel on frames with a known logistic truth: accuracy against the oracle, no leaks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import sklearn.exceptions
from sklearn.base import clone
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.utils.validation import check_is_fitted

import churn.model
from churn import ChurnModel, NotFittedError
from churn.model import MAX_TREE_DEPTH, PROBABILITY_CLIP, validation_halves
from crm_engine.config import LightGBMConfig
from features.labels import churn_label
from tests.churn.synth import make_profile

LABEL = "churned_within_90d"


def test_out_of_time_auc_and_brier_close_to_oracle(
    churn_model: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    _, valid, p_true = cuts
    _, report = validation_halves(valid, churn_model.seed)
    y = valid[LABEL].to_numpy()[report]
    oracle_auc = roc_auc_score(y, p_true[report])
    oracle_brier = brier_score_loss(y, p_true[report])
    m = churn_model.metrics_
    assert m["n"] == report.sum()
    assert m["roc_auc"] >= oracle_auc - 0.03, (m["roc_auc"], oracle_auc)
    assert m["brier"] <= oracle_brier * 1.10, (m["brier"], oracle_brier)
    # the metrics are those of the report half, recomputed independently
    p = churn_model.predict_churn(valid.filter(pl.Series(report)))
    assert roc_auc_score(y, p) == pytest.approx(m["roc_auc"])
    # calibrated: mean prediction matches the observed rate of the untouched half
    assert abs(m["mean_prediction"] - m["base_rate"]) < 0.02
    assert m["lift_top_decile"] > 2.0
    assert 0 < churn_model.best_iteration_ < churn_model.lgbm_params["n_estimators"]


def test_shuffled_labels_give_chance_auc(
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
) -> None:
    train, valid, _ = cuts
    rng = np.random.default_rng(3)
    shuffle = lambda f: f.with_columns(  # noqa: E731
        pl.Series(LABEL, rng.permutation(f[LABEL].to_numpy()))
    )
    model = ChurnModel(seed=0).fit(shuffle(train), shuffle(valid))
    assert abs(model.metrics_["raw_roc_auc"] - 0.5) < 0.05
    assert abs(model.metrics_["roc_auc"] - 0.5) < 0.05


def test_validation_split_by_customer_not_row_order(
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
) -> None:
    _, valid, _ = cuts
    fit, report = validation_halves(valid, 0)
    assert not (fit & report).any() and (fit | report).all()
    assert 0.45 < fit.mean() < 0.55
    reversed_ = valid.reverse()
    fit_r, _ = validation_halves(reversed_, 0)
    ids = set(valid.filter(pl.Series(fit))["customer_id"].to_list())
    assert ids == set(reversed_.filter(pl.Series(fit_r))["customer_id"].to_list())


def test_default_calibration_is_platt_and_never_saturates(
    churn_model: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    _, valid, _ = cuts
    assert churn_model.calibrator_.method == "platt"
    m = churn_model.metrics_
    assert abs(m["mean_prediction"] - m["base_rate"]) < 0.02
    # Platt is monotone: ranking unchanged
    assert m["roc_auc"] == pytest.approx(m["raw_roc_auc"])
    # ...and smooth: no customer pinned to the clip bounds, unlike isotonic's end steps
    p = churn_model.predict_churn(valid)
    assert PROBABILITY_CLIP < p.min() and p.max() < 1 - PROBABILITY_CLIP
    assert np.unique(p).size > 0.5 * len(p)


def test_isotonic_calibration(cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]) -> None:
    train, valid, _ = cuts
    model = ChurnModel(calibration="isotonic", seed=0).fit(train, valid)
    assert model.calibrator_.method == "isotonic"
    assert abs(model.metrics_["mean_prediction"] - model.metrics_["base_rate"]) < 0.02
    p = model.predict_churn(valid)
    assert np.unique(p).size < 0.1 * len(p)  # a step function
    assert np.all(np.diff(p[np.argsort(model.predict_raw(valid))]) >= 0)  # monotone in raw


def test_depth_is_capped() -> None:
    train, _ = make_profile(3_000, seed=5)
    valid, _ = make_profile(3_000, seed=6, id_offset=10_000)
    with pytest.warns(UserWarning, match="max_depth=-1"):
        model = ChurnModel(lgbm_params={"max_depth": -1, "n_estimators": 20}).fit(train, valid)
    assert model.params_["max_depth"] == MAX_TREE_DEPTH


def test_config_bounds_depth_at_the_models_cap() -> None:
    # the config rejects what the model would cap (with a warning) on direct construction
    bound = LightGBMConfig.model_json_schema()["properties"]["max_depth"]
    assert (bound["minimum"], bound["maximum"]) == (1, MAX_TREE_DEPTH)


def test_save_load_identical(
    churn_model: ChurnModel, tmp_path: Path, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    _, valid, _ = cuts
    churn_model.save(tmp_path / "m")
    loaded = ChurnModel.load(tmp_path / "m")
    sample = valid.head(3_000)
    np.testing.assert_array_equal(loaded.predict_churn(sample), churn_model.predict_churn(sample))
    assert loaded.feature_names_in_ == churn_model.feature_names_in_
    assert loaded.get_params() == churn_model.get_params()
    check_is_fitted(loaded)


def test_errors_name_the_problem(cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]) -> None:
    train, valid, _ = cuts
    with pytest.raises(NotFittedError, match="not fitted"):
        ChurnModel().predict_churn(valid)
    with pytest.raises(ValueError, match="churned_within_30d"):
        ChurnModel(horizon_days=30).fit(train, valid)
    with pytest.raises(ValueError, match="only one class"):
        ChurnModel().fit(train.with_columns(pl.lit(False).alias(LABEL)), valid)


def test_not_fitted_error_is_sklearns() -> None:
    # re-exported under the old name so `except churn.NotFittedError` keeps working
    assert NotFittedError is sklearn.exceptions.NotFittedError
    with pytest.raises(sklearn.exceptions.NotFittedError, match="ChurnModel instance is not"):
        check_is_fitted(ChurnModel())
    for method in ("predict_churn", "predict_raw", "predict_proba", "contributions"):
        with pytest.raises(sklearn.exceptions.NotFittedError, match="call fit"):
            getattr(ChurnModel(), method)(pl.DataFrame({"customer_id": [1]}))
    with pytest.raises(sklearn.exceptions.NotFittedError):
        ChurnModel().save(Path("never-written"))


def test_clone_gives_unfitted_copy_with_equal_params(churn_model: ChurnModel) -> None:
    check_is_fitted(churn_model)
    copy = clone(churn_model)
    assert type(copy) is ChurnModel and copy is not churn_model
    assert copy.get_params() == churn_model.get_params()
    assert copy.get_params()["lgbm_params"] is not churn_model.lgbm_params  # deep-copied
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(copy)
    assert not [k for k in vars(copy) if k.endswith("_")]


def test_init_stores_hyperparameters_only_and_set_params_works() -> None:
    model = ChurnModel(horizon_days=30, calibration="bogus", lgbm_params={"max_depth": 99})
    # no validation, no derived attributes: one attribute per argument, stored as given
    init_args = {
        "horizon_days",
        "lgbm_params",
        "early_stopping_rounds",
        "calibration",
        "extra_features",
        "seed",
        "features",
        "learner",
    }
    assert set(vars(model)) == set(model.get_params()) == init_args
    assert model.calibration == "bogus" and model.lgbm_params == {"max_depth": 99}
    assert model.set_params(calibration="isotonic", horizon_days=60) is model
    assert (model.calibration, model.horizon_days, model.label_) == (
        "isotonic",
        60,
        "churned_within_60d",
    )
    with pytest.raises(ValueError, match="Invalid parameter"):
        model.set_params(n_estimators=10)


def test_fit_sets_only_trailing_underscore_attributes(
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
) -> None:
    train, valid, _ = cuts
    model = ChurnModel(lgbm_params={"max_depth": 3, "n_estimators": 20})
    before = dict(vars(model))
    params = model.get_params()
    assert model.fit(train, valid) is model
    new = set(vars(model)) - set(before)
    assert new, "fit set no attributes"
    assert all(k.endswith("_") for k in new), sorted(k for k in new if not k.endswith("_"))
    assert {k: vars(model)[k] for k in before} == before  # hyperparameters untouched
    assert model.get_params() == params
    check_is_fitted(model)
    with pytest.raises(ValueError, match="calibration='bogus'"):
        clone(model).set_params(calibration="bogus").fit(train, valid)


def test_label_name_comes_from_features_labels() -> None:
    assert ChurnModel(horizon_days=30).label_ == churn_label(30) == "churned_within_30d"
    assert not hasattr(churn.model, "label_column")  # one function for the label name
