"""The tracking store a run resolves is its own, however many runs one process makes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crm_engine.config import MlflowConfig
from crm_engine.tracking import configure


def test_a_second_run_in_one_process_tracks_into_its_own_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow exports the URI it is given to the environment; left there, the next run of the
    # process took it for the user's MLFLOW_TRACKING_URI and logged into the first run's store.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = configure(MlflowConfig(), tmp_path / "a")
    assert "MLFLOW_TRACKING_URI" not in os.environ
    second = configure(MlflowConfig(), tmp_path / "b")
    assert first == f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}"
    assert second == f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}"
    mine = f"sqlite:///{tmp_path / 'mine.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mine)
    assert configure(MlflowConfig(), tmp_path / "c") == mine
    assert os.environ["MLFLOW_TRACKING_URI"] == mine  # the user's own, kept
