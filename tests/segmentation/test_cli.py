"""`crm-engine segment` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from crm_engine.cli import app


def test_segment_command_writes_outputs_and_keeps_ids(tmp_path: Path, generated_data: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run" / "segments.parquet"
    args = ["segment", "--data", str(generated_data), "--out", str(out), "--as-of", "2024-10-01"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    for name in (
        "segments.parquet",
        "segment_profiles.parquet",
        "segmentation_model.pkl",
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
