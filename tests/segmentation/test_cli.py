"""`crm-engine segment` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from crm_engine.cli import app
from segmentation import SegmentationWarning


def test_segment_command_writes_outputs_and_keeps_ids(tmp_path: Path, generated_data: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run" / "segments.parquet"
    args = ["segment", "--data", str(generated_data), "--out", str(out), "--as-of", "2024-10-01"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    for name in (
        "segments.parquet",
        "segment_profiles.parquet",
        "segmentation_model.skops",
        "segmentation.json",
    ):
        assert (out.parent / name).is_file(), name
    seg = pl.read_parquet(out)
    assert seg.columns == [
        "customer_id",
        "as_of",
        "spend_level",
        "age_band",
        "segment_id",
        "segment_name",
    ]
    assert seg["segment_id"].null_count() == 0
    assert not (out.parent / "segment_migration.parquet").exists()

    # the model beside --out is picked up: ids stay, a migration matrix appears
    second = runner.invoke(app, [*args, "--seed", "4"])
    assert second.exit_code == 0, second.output
    assert "kept their segment" in second.output
    report = json.loads((out.parent / "segmentation.json").read_text())
    assert report["aligned"] is True and report["same_segment_share"] >= 0.95
    mig = pl.read_parquet(out.parent / "segment_migration.parquet")
    assert mig["customers"].sum() == seg.height
    assert not list(out.parent.glob("*.pkl"))


def test_a_pickle_left_by_an_older_version_is_not_loaded(
    tmp_path: Path, generated_data: Path
) -> None:
    """An old ``segmentation_model.pkl`` beside --out: a warning, fresh ids, the pickle goes."""
    import pickle

    out = tmp_path / "run" / "segments.parquet"
    out.parent.mkdir()
    marker = tmp_path / "code-ran"
    (out.parent / "segmentation_model.pkl").write_bytes(pickle.dumps(_Planted(marker)))
    args = ["segment", "--data", str(generated_data), "--out", str(out), "--as-of", "2024-10-01"]
    with pytest.warns(SegmentationWarning, match="is a pickle from an older version: not loaded"):
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert not marker.exists()
    assert json.loads((out.parent / "segmentation.json").read_text())["aligned"] is False
    assert not (out.parent / "segmentation_model.pkl").exists()
    assert (out.parent / "segmentation_model.skops").is_file()


class _Planted:
    """A pickle that would create a file when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_segment_command_errors_are_one_line(tmp_path: Path, generated_data: Path) -> None:
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text('[segmentation]\nfeatures = ["age", "mood_score"]\n')
    result = CliRunner().invoke(
        app,
        [
            "segment",
            "--data",
            str(generated_data),
            "--out",
            str(tmp_path / "s.parquet"),
            "--config",
            str(cfg),
        ],
    )
    assert result.exit_code == 1
    assert "mood_score" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "s.parquet").exists()
