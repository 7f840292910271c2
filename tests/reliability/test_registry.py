"""Models are part of the commit: a failed run registers versions nobody scores with."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from crm_engine.config import load_config
from pipelines.runner import Stage, StageContext, StageError, StageOutput, run_pipeline
from pipelines.stages import pipeline


def test_a_failed_run_never_moves_champion(
    generated_operator: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from crm_engine import tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "out"
    cfg = load_config(
        None,
        {"data.dir": str(generated_operator), "output.dir": str(out), "data.as_of": "2024-10-01"},
    )
    first = run_pipeline(cfg, pipeline("run", ["valuation"]))
    assert first.model_versions["clv"] == "1"
    assert tracking.registered_model_uri("clv") == "models:/crm-clv/1"
    before = (out / "scores.parquet").read_bytes()

    def boom(ctx: StageContext, profile: pl.DataFrame) -> StageOutput:
        raise RuntimeError("simulated failure after the model was registered")

    stages = pipeline("run", ["valuation"])
    stages.insert(-1, Stage("explode", boom, ("profile",), ("nothing",)))
    with pytest.raises(StageError, match="simulated failure"):
        run_pipeline(cfg, stages)

    client = MlflowClient()
    versions = {str(v.version) for v in client.search_model_versions("name = 'crm-clv'")}
    assert versions == {"1", "2"}  # the failed run did register its model ...
    assert tracking.registered_model_uri("clv") == "models:/crm-clv/1"  # ... nobody uses it
    assert (out / "scores.parquet").read_bytes() == before
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert {r.data.tags.get("crm.stage") for r in failed} >= {None, "explode"}  # parent + stage
    assert not [r for r in runs if r.info.status == "RUNNING"]
