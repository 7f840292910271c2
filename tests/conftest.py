"""Shared fixtures: one small generated operator per test session (generation is deterministic)."""

from __future__ import annotations

from pathlib import Path

import pytest

E2E_CUSTOMERS = 2_500
E2E_SEED = 11


@pytest.fixture(scope="session")
def generated_operator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2,500-customer, 24-month synthetic operator (tables + ``_truth``); read-only."""
    from crm_engine.generator import generate

    out = tmp_path_factory.mktemp("operator") / "data"
    generate(out, customers=E2E_CUSTOMERS, months=24, seed=E2E_SEED)
    return out


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """The hand-built tiny dataset of ``tests.features._tiny`` as Parquet files in ``data/``."""
    from tests.features._tiny import tiny_frames

    d = tmp_path / "data"
    d.mkdir()
    for name, df in tiny_frames().items():
        df.write_parquet(d / f"{name}.parquet")
    return d
