"""The segmentation model through MLflow: log, load back, same assignments, nothing pickled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from segmentation import SegmentationResult


def test_pyfunc_round_trip_assigns_the_same(
    tmp_path: Path, blobs: pl.DataFrame, blobs_result: SegmentationResult
) -> None:
    import mlflow

    from segmentation.pyfunc import log_segmentation_model, model_input_frame
    from segmentation.store import MODEL_FILE

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    artifacts = tmp_path / "artifacts"
    mlflow.create_experiment("segmentation-test", artifact_location=artifacts.as_uri())
    mlflow.set_experiment("segmentation-test")
    with mlflow.start_run():
        info = log_segmentation_model(blobs_result, registered_model_name="crm-segmentation")
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    X = model_input_frame(blobs_result.model, blobs.head(500))
    assert list(X.columns) == blobs_result.model.features_
    out = loaded.predict(X)
    expected = blobs_result.assignments.head(500)
    np.testing.assert_array_equal(out["segment_id"].to_numpy(), expected["segment_id"].to_numpy())
    assert out["segment_name"].tolist() == expected["segment_name"].to_list()
    # the logged example is synthetic: none of its rows is a customer row
    example = mlflow.models.Model.load(info.model_uri).load_input_example()
    assert len(example) == 3
    assert not set(example["revenue_365d"]) & set(blobs["revenue_365d"])
    sig_cols = [c.name for c in info.signature.inputs.inputs]
    assert sig_cols == blobs_result.model.features_
    registered = mlflow.pyfunc.load_model("models:/crm-segmentation/1")
    assert registered.predict(X.head(3))["segment_id"].tolist() == out["segment_id"][:3].tolist()
    # stored as data: the skops file and the generated entry code, no pickle anywhere
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    assert any(p.name == MODEL_FILE for p in files)
    assert not [p for p in files if p.suffix == ".pkl"], files
    mlflow.set_tracking_uri(None)
