"""The CLV pyfunc model logs to a real sqlite MLflow store, loads back and scores the same.

It is stored as data (JSON of the fitted parameters): no pickle in the logged model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from crm_engine.config import ValuationConfig
from valuation import btyd_statistics, fit_models, value_customers


def test_log_load_and_score_the_same(profile: pl.DataFrame, tmp_path: Path) -> None:
    import mlflow

    from valuation.pyfunc import OUTPUT_COLUMNS, log_valuation_model, synthetic_input_example

    cfg = ValuationConfig(horizon_days=180)
    models = fit_models(btyd_statistics(profile), cfg)
    values, _ = value_customers(profile, cfg, models)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/m.db")
    artifacts = tmp_path / "artifacts"
    mlflow.create_experiment("valuation-test", artifact_location=artifacts.as_uri())
    mlflow.set_experiment("valuation-test")
    with mlflow.start_run():
        info = log_valuation_model(models.purchase, models.spend, cfg)
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    inputs = profile.select("frequency", "recency", "T", "monetary_value").to_pandas()
    inputs["frequency"] = inputs["frequency"].astype("float64")
    scored = loaded.predict(inputs)
    assert list(scored.columns) == list(OUTPUT_COLUMNS)
    for c in OUTPUT_COLUMNS:
        np.testing.assert_array_equal(scored[c].to_numpy(), values[c].to_numpy())
    inner = loaded.unwrap_python_model()
    assert inner.purchase.params_ == models.purchase.params_
    assert inner.spend.params_ == models.spend.params_
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    assert any(p.name == "clv_model.json" for p in files)
    assert not [p for p in files if p.suffix == ".pkl"], files
    # The logged example is synthetic: none of the profile's rows.
    from mlflow.models import Model

    local = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "dl"))
    example = Model.load(local).load_input_example(local)
    assert len(example) == 2
    assert example.to_dict("list") == synthetic_input_example().to_dict("list")
    assert info.signature is not None
    mlflow.set_tracking_uri(None)
