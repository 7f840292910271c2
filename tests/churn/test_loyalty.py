"""LoyaltyModel: 3 classes, trained on surveyed customers, evaluated out of time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

import churn
import churn.loyalty
import features.labels
from churn import LoyaltyModel
from features.labels import LOYALTY_CLASSES


def test_loyalty_per_class_auc(loyalty_model: LoyaltyModel) -> None:
    m = loyalty_model.metrics_
    for c in LOYALTY_CLASSES:
        assert m[f"auc_{c}"] > 0.65, (c, m[f"auc_{c}"])
    assert m["auc_promoter"] > 0.7 and m["auc_detractor"] > 0.7
    # only surveyed customers were used: about half of each cut
    assert 0.4 * 20_000 < m["train_rows"] < 0.6 * 20_000


def test_loyalty_without_early_stopping_grows_every_tree(
    loyalty_model: LoyaltyModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    # the pipeline's default: all n_estimators trees, the L2 penalty bounds the fit
    assert loyalty_model.early_stopping_rounds is None
    n_trees = loyalty_model.lgbm_params["n_estimators"]
    assert loyalty_model.best_iteration_ == n_trees == loyalty_model.booster_.current_iteration()
    train, valid, _ = cuts
    eager = {"n_estimators": n_trees, "learning_rate": 0.5, "reg_lambda": 0.0}
    stopped = LoyaltyModel(lgbm_params=eager, early_stopping_rounds=3).fit(train, valid)
    assert stopped.best_iteration_ < n_trees


def test_loyalty_predictions(
    loyalty_model: LoyaltyModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    _, valid, _ = cuts
    proba = loyalty_model.predict_proba(valid.head(500))
    assert proba.shape == (500, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    pred = loyalty_model.predict(valid.head(500))
    assert set(pred) <= set(LOYALTY_CLASSES)
    assert (pred == np.asarray(loyalty_model.classes_)[proba.argmax(axis=1)]).all()


def test_loyalty_rejects_unknown_labels(
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
) -> None:
    train, valid, _ = cuts
    bad = train.with_columns(
        pl.when(pl.col("loyalty_class") == "passive")
        .then(pl.lit("fan"))
        .otherwise("loyalty_class")
        .alias("loyalty_class")
    )
    with pytest.raises(ValueError, match="fan"):
        LoyaltyModel().fit(bad, valid)
    no_promoter = train.filter(pl.col("loyalty_class") != "promoter")
    with pytest.raises(ValueError, match="promoter"):
        LoyaltyModel().fit(no_promoter, valid)


def test_loyalty_clone_and_not_fitted(loyalty_model: LoyaltyModel) -> None:
    check_is_fitted(loyalty_model)
    copy = clone(loyalty_model)
    assert type(copy) is LoyaltyModel and copy is not loyalty_model
    assert copy.get_params() == loyalty_model.get_params()
    assert set(vars(LoyaltyModel())) == set(copy.get_params())
    with pytest.raises(NotFittedError, match="LoyaltyModel instance is not fitted"):
        check_is_fitted(copy)
    with pytest.raises(NotFittedError, match="call fit"):
        copy.predict_proba(pl.DataFrame({"customer_id": [1]}))
    with pytest.raises(NotFittedError):
        copy.predict(pl.DataFrame({"customer_id": [1]}))


def test_loyalty_fit_sets_only_trailing_underscore_attributes(
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
) -> None:
    train, valid, _ = cuts
    model = LoyaltyModel(lgbm_params={"max_depth": 3, "n_estimators": 20})
    before = dict(vars(model))
    params = model.get_params()
    assert model.fit(train, valid) is model
    new = set(vars(model)) - set(before)
    assert new, "fit set no attributes"
    assert all(k.endswith("_") for k in new), sorted(k for k in new if not k.endswith("_"))
    assert {k: vars(model)[k] for k in before} == before
    assert model.get_params() == params
    check_is_fitted(model)


def test_loyalty_classes_one_declaration_and_the_models_own_order(
    loyalty_model: LoyaltyModel,
) -> None:
    # the label values are declared once, where the labels are built
    assert churn.loyalty.LOYALTY_CLASSES is features.labels.LOYALTY_CLASSES
    assert not hasattr(churn, "LOYALTY_CLASSES")  # no second tuple in another order
    # the model's column order is its own, learned attribute: sorted like sklearn's classes_
    assert "classes_" in vars(loyalty_model) and "classes_" not in vars(LoyaltyModel)
    assert loyalty_model.classes_ == ("detractor", "passive", "promoter")
    assert set(loyalty_model.classes_) == set(LOYALTY_CLASSES)


def test_loyalty_save_load_keeps_classes(
    loyalty_model: LoyaltyModel,
    tmp_path: Path,
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
) -> None:
    _, valid, _ = cuts
    sample = valid.head(500)
    loyalty_model.save(tmp_path / "m")
    loaded = LoyaltyModel.load(tmp_path / "m")
    assert loaded.classes_ == loyalty_model.classes_
    assert loaded.get_params() == loyalty_model.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(sample), loyalty_model.predict_proba(sample))
    # a model saved before classes_ was stored used the same (sorted) order
    state_file = tmp_path / "m" / "state.json"
    state = json.loads(state_file.read_text())
    del state["classes"]
    state_file.write_text(json.dumps(state))
    assert LoyaltyModel.load(tmp_path / "m").classes_ == ("detractor", "passive", "promoter")
