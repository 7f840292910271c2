"""Fixtures of the segmentation tests: planted blobs and a small generated operator."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from crm_engine.config import SegmentationConfig
from segmentation import SegmentationResult, segment_customers
from segmentation.synthetic import synthetic_profile

GENERATED_CUSTOMERS = 5_000
GENERATED_SEED = 3


@pytest.fixture(scope="session")
def blobs() -> pl.DataFrame:
    """4,000 profile-like rows with five planted personas (column ``persona``)."""
    return synthetic_profile(4_000, seed=1)


@pytest.fixture(scope="session")
def blobs_result(blobs: pl.DataFrame) -> SegmentationResult:
    """The stage run once on the blobs with k='auto' (shared by read-only tests)."""
    return segment_customers(blobs, SegmentationConfig(k_min=3, k_max=7))


@pytest.fixture(scope="session")
def generated_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5,000-customer, 24-month synthetic operator (tables + ``_truth``)."""
    from crm_engine.generator import generate

    out = tmp_path_factory.mktemp("segmentation_operator") / "data"
    generate(out, customers=GENERATED_CUSTOMERS, months=24, seed=GENERATED_SEED)
    return out


@pytest.fixture(scope="session")
def generated_profile(generated_data: Path) -> pl.DataFrame:
    """Profile at the default as_of, with the planted ``persona`` joined from ``_truth``."""
    from crm_engine.io import load_tables
    from features import build_profile, default_as_of

    tables = load_tables(generated_data)
    profile = build_profile(tables, default_as_of(tables["transactions"])).collect()
    truth = pl.read_parquet(generated_data / "_truth" / "customers.parquet")
    return profile.join(truth.select("customer_id", "persona"), on="customer_id", how="left")
