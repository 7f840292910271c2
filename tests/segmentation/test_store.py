"""The segmentation model on disk: stored as data (skops), checked, never unpickled."""

from __future__ import annotations

import copy
import datetime as dt
import json
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from crm_engine.config import load_config
from crm_engine.io import DataError, file_sha256
from segmentation import SegmentationWarning
from segmentation.cluster import ALGORITHMS, Segmenter
from segmentation.store import (
    LEGACY_MODEL_FILE,
    MODEL_FILE,
    TRUSTED_TYPES,
    load_segmenter,
    save_segmenter,
)

AS_OF = dt.date(2024, 10, 1)


@pytest.fixture(scope="module")
def X(blobs: pl.DataFrame) -> pd.DataFrame:
    return blobs.to_pandas()


@pytest.fixture(scope="module")
def fitted(X: pd.DataFrame) -> dict[str, Segmenter]:
    return {a: Segmenter(algorithm=a, k=5, sample_size=3_000).fit(X) for a in ALGORITHMS}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_round_trip_assigns_the_same(
    algorithm: str, fitted: dict[str, Segmenter], X: pd.DataFrame, tmp_path: Path
) -> None:
    model = fitted[algorithm]
    path = save_segmenter(model, tmp_path / MODEL_FILE)
    assert zipfile.is_zipfile(path)
    again = load_segmenter(path, file_sha256(path))
    pd.testing.assert_frame_equal(again.assign(X), model.assign(X))
    np.testing.assert_array_equal(again.transform(X), model.transform(X))
    np.testing.assert_array_equal(again.centroids_, model.centroids_)
    pd.testing.assert_frame_equal(again.scores_, model.scores_)
    pd.testing.assert_frame_equal(again.deviations_, model.deviations_)
    assert again.segment_names_ == model.segment_names_
    assert again.get_params() == model.get_params()
    assert not hasattr(again, "labels_")  # one label per fit row: not kept


def test_a_tampered_file_is_refused(fitted: dict[str, Segmenter], tmp_path: Path) -> None:
    path = save_segmenter(fitted["kmeans"], tmp_path / MODEL_FILE)
    recorded = file_sha256(path)
    with open(path, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(DataError, match="does not match the sha256 its run recorded"):
        load_segmenter(path, recorded)


def _rewrite_schema(src: Path, dst: Path, old: str, new: str) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "schema.json":
                text = data.decode()
                assert old in text
                data = text.replace(old, new).encode()
            zout.writestr(item, data)


def test_a_file_naming_a_type_outside_the_allowlist_is_refused(
    fitted: dict[str, Segmenter], tmp_path: Path
) -> None:
    good = save_segmenter(fitted["kmeans"], tmp_path / "good.skops")
    crafted = tmp_path / MODEL_FILE
    _rewrite_schema(
        good,
        crafted,
        '"__class__": "multiply_columns",\n                          "__module__": '
        '"segmentation.preprocess"',
        '"__class__": "system",\n                          "__module__": "os"',
    )
    assert "os.system" not in TRUSTED_TYPES
    # Even the checksum of the crafted file does not make it trusted.
    with pytest.raises(DataError, match=r"is not loaded: .*os\.system"):
        load_segmenter(crafted, file_sha256(crafted))


def test_a_skops_file_of_something_else_is_refused(tmp_path: Path) -> None:
    import skops.io as sio

    path = tmp_path / MODEL_FILE
    sio.dump({"format": "crm.segmenter/v1", "pipeline": [1, 2]}, path)
    with pytest.raises(DataError, match="holds no fitted segmentation pipeline"):
        load_segmenter(path)


class _Planted:
    """A pickle that would create a file when loaded (what a hostile model file could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_a_pickle_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "segmentation_model.pkl"
    path.write_bytes(pickle.dumps(_Planted(marker)))
    with pytest.raises(DataError, match=r"is a pickle .* pickles are not loaded"):
        load_segmenter(path)  # as --previous FILE would
    assert not marker.exists()


def _ctx(tmp_path: Path, previous: Path | None):  # type: ignore[no-untyped-def]
    from pipelines.runner import StageContext

    cfg = load_config(None, {"segmentation.k": 5})
    work = tmp_path / "work"
    work.mkdir(parents=True, exist_ok=True)
    return StageContext(
        cfg=cfg, as_of=AS_OF, workdir=work, tracking=False, previous_output=previous
    )


def test_a_previous_run_with_only_a_pickle_starts_fresh(
    blobs: pl.DataFrame, tmp_path: Path
) -> None:
    from segmentation.stage import segmentation_stage

    previous = tmp_path / "previous"
    previous.mkdir()
    marker = tmp_path / "code-ran"
    (previous / LEGACY_MODEL_FILE).write_bytes(pickle.dumps(_Planted(marker)))
    recorded = {LEGACY_MODEL_FILE: {"sha256": file_sha256(previous / LEGACY_MODEL_FILE)}}
    (previous / "manifest.json").write_text(json.dumps({"outputs": recorded}))
    ctx = _ctx(tmp_path, previous)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = segmentation_stage(ctx, blobs)
    messages = [str(w.message) for w in caught if issubclass(w.category, SegmentationWarning)]
    assert any("is a pickle from an older version: not loaded" in m for m in messages)
    assert not marker.exists()
    assert out.report.previous_model is None
    assert sorted(out.outputs["segments"]["segment_id"].unique()) == list(range(5))
    assert (ctx.workdir / MODEL_FILE).is_file()
    assert not list(ctx.workdir.rglob("*.pkl"))


def test_a_run_directory_model_is_loaded_only_with_its_recorded_sha256(
    blobs: pl.DataFrame, fitted: dict[str, Segmenter], tmp_path: Path
) -> None:
    from segmentation.stage import segmentation_stage

    previous = tmp_path / "previous"
    model = copy.deepcopy(fitted["kmeans"])
    model.set_segment_ids([10, 11, 12, 13, 14])
    path = save_segmenter(model, previous / MODEL_FILE)
    manifest = {"outputs": {MODEL_FILE: {"sha256": file_sha256(path)}}}
    (previous / "manifest.json").write_text(json.dumps(manifest))
    out = segmentation_stage(_ctx(tmp_path, previous), blobs)
    assert out.report.previous_model == str(path)
    assert set(out.outputs["segments"]["segment_id"].unique()) <= set(range(10, 20))

    manifest["outputs"][MODEL_FILE]["sha256"] = "0" * 64
    (previous / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="does not match the sha256 its run recorded"):
        segmentation_stage(_ctx(tmp_path / "again", previous), blobs)
