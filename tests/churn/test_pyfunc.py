"""MLflow round trip: the logged pyfunc scores exactly like the model in memory."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import numpy as np
import polars as pl
import pytest

from churn import ChurnModel, LoyaltyModel
from churn.pyfunc import (
    load_churn_model,
    load_loyalty_model,
    log_churn_model,
    log_loyalty_model,
    pyfunc_input,
)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp_path}/m.db"
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("churn-test", artifact_location=(tmp_path / "art").as_uri())
    mlflow.set_experiment(experiment_id=exp)
    yield uri
    mlflow.set_tracking_uri(None)


def test_churn_pyfunc_round_trip(
    tracking: str, churn_model: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    _, valid, _ = cuts
    sample = valid.head(2_000)
    with mlflow.start_run():
        info = log_churn_model(churn_model, registered_model_name="crm-churn")
    assert info.registered_model_version == 1
    # signature: no integer inputs (nullable ints declared double), categoricals as strings
    inputs = {c.name: c.type.name for c in info.signature.inputs.inputs}
    assert set(inputs) == set(churn_model.feature_names_in_)
    assert inputs["tenure_days"] == "double"
    assert inputs["region"] == "string"

    loaded = mlflow.pyfunc.load_model("models:/crm-churn/1")
    # The logged input example is made up from the feature spec, never customer rows.
    example = loaded.input_example
    assert list(example.columns) == list(churn_model.feature_names_in_)
    assert len(example) == 3
    assert example["tenure_days"].tolist() == [0.0, 1.0, 2.0]
    out = loaded.predict(pyfunc_input(churn_model, sample))
    expected = churn_model.predict_churn(sample)
    np.testing.assert_array_equal(out["churn_probability"].to_numpy(), expected)

    restored = load_churn_model("models:/crm-churn/1")
    np.testing.assert_array_equal(restored.predict_churn(sample), expected)
    np.testing.assert_allclose(
        restored.contributions(sample.head(50)), churn_model.contributions(sample.head(50))
    )


def test_pyfunc_restores_categories_for_unseen_and_reordered_values(
    tracking: str, churn_model: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    _, valid, _ = cuts
    sample = valid.head(500)
    # a batch holding only a subset of the regions (pandas codes would shift without the
    # stored categories) plus one region never seen in training
    subset = sample.filter(pl.col("region").is_in(["region_07", "region_03"]))
    odd = subset.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit("atlantis"))
        .otherwise("region")
        .alias("region")
    )
    with mlflow.start_run():
        info = log_churn_model(churn_model)
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    out = loaded.predict(pyfunc_input(churn_model, odd))["churn_probability"].to_numpy()
    np.testing.assert_array_equal(out[1:], churn_model.predict_churn(subset)[1:])
    assert np.isfinite(out[0])


def test_loyalty_pyfunc_round_trip(
    tracking: str,
    loyalty_model: LoyaltyModel,
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
) -> None:
    _, valid, _ = cuts
    sample = valid.head(1_000)
    with mlflow.start_run():
        info = log_loyalty_model(loyalty_model, registered_model_name="crm-loyalty")
    assert info.registered_model_version == 1
    out = mlflow.pyfunc.load_model("models:/crm-loyalty/1").predict(
        pyfunc_input(loyalty_model, sample)
    )
    proba = loyalty_model.predict_proba(sample)
    np.testing.assert_array_equal(out["loyalty_score"].to_numpy(), proba[:, 2])
    assert out["loyalty_class"].tolist() == loyalty_model.predict(sample).tolist()
    restored = load_loyalty_model("models:/crm-loyalty/1")
    np.testing.assert_array_equal(restored.predict_proba(sample), proba)


def test_log_needs_active_run(tracking: str, churn_model: ChurnModel) -> None:
    with pytest.raises(RuntimeError, match="active MLflow run"):
        log_churn_model(churn_model)


def test_logistic_churn_model_round_trips_through_the_registry(
    tracking: str,
    logistic_model: ChurnModel,
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
) -> None:
    _, valid, _ = cuts
    model = logistic_model
    sample = valid.head(1_000)
    with mlflow.start_run():
        log_churn_model(model, registered_model_name="crm-churn-logistic")
    loaded = mlflow.pyfunc.load_model("models:/crm-churn-logistic/1")
    out = loaded.predict(pyfunc_input(model, sample))
    np.testing.assert_array_equal(out["churn_probability"].to_numpy(), model.predict_churn(sample))
    restored = load_churn_model("models:/crm-churn-logistic/1")
    assert restored.learner == "logistic"
    np.testing.assert_array_equal(
        restored.contributions(sample.head(50)), model.contributions(sample.head(50))
    )
