"""The named pipelines: each command's stages, declared once in `pipelines.stages.PIPELINES`."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from pipelines.stages import PIPELINES, StageOptions, pipeline

RUN_OUTPUT = ["assemble", "backtest", "drift"]


@pytest.mark.parametrize(
    ("name", "stages"),
    [
        ("run", ["profile", "segmentation", "valuation", "churn", *RUN_OUTPUT]),
        ("score-only", ["profile", "segmentation", "valuation", "churn", *RUN_OUTPUT]),
        ("features", ["profile"]),
        ("segment", ["profile", "segmentation"]),
        ("value", ["profile", "valuation"]),
        ("churn-train", ["profile", "churn"]),
        ("churn-score", ["profile", "churn"]),
    ],
)
def test_every_command_has_its_pipeline(name: str, stages: list[str]) -> None:
    assert [s.name for s in pipeline(name)] == stages


def test_every_pipeline_is_tested_above() -> None:
    assert set(PIPELINES) == {
        "run",
        "score-only",
        "features",
        "segment",
        "value",
        "churn-train",
        "churn-score",
    }


def test_only_keeps_the_profile_and_the_writing_stages() -> None:
    assert [s.name for s in pipeline("run", ["churn"])] == ["profile", "churn", *RUN_OUTPUT]
    assert [s.name for s in pipeline("score-only", ["valuation"])] == [
        "profile",
        "valuation",
        *RUN_OUTPUT,
    ]


def test_score_only_and_churn_score_read_the_profile_not_the_tables() -> None:
    for name in ("score-only", "churn-score"):
        models = [s for s in pipeline(name) if s.name in ("segmentation", "valuation", "churn")]
        assert all(s.inputs == ("profile",) for s in models), name


def test_churn_train_declares_no_scores() -> None:
    churn = pipeline("churn-train")[-1]
    assert churn.schemas == {} and churn.func.keywords == {"score": False}  # type: ignore[attr-defined]


def test_options_reach_their_stage() -> None:
    previous = Path("model.skops")
    seg = pipeline("segment", options=StageOptions(previous_segmenter=previous))[-1]
    assert isinstance(seg.func, functools.partial)
    assert seg.func.keywords == {"previous": previous}
    churn = pipeline("churn-score", options=StageOptions(churn_uri="models:/crm-churn/3"))[-1]
    assert isinstance(churn.func, functools.partial)
    assert churn.func.keywords == {"churn_uri": "models:/crm-churn/3", "loyalty_uri": None}


def test_unknown_names_are_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown pipeline 'train'; one of: run, score-only"):
        pipeline("train")
    with pytest.raises(ValueError, match=r"unknown stages \['bogus'\]; allowed: profile"):
        pipeline("run", ["bogus"])
