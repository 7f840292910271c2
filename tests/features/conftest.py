"""Fixtures of the features tests."""

from __future__ import annotations

import polars as pl
import pytest

from tests.features._tiny import tiny_frames


@pytest.fixture
def tiny() -> dict[str, pl.DataFrame]:
    return tiny_frames()
