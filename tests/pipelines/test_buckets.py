"""The bucketed pass: profiles built bucket by bucket equal the profile of the whole input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from crm_engine.config import EngineConfig, FeaturesConfig
from crm_engine.io import DataError, load_tables
from features import build_profile
from features.sample import SAMPLE_BUCKETS, CustomerSample, bucket_expr, buckets_holding
from pipelines.buckets import bucket_count, bucketed_profile, split_tables

CUT = dt.date(2024, 10, 1)


@pytest.fixture(scope="module")
def tables(generated_operator: Path) -> dict[str, pl.LazyFrame]:
    return load_tables(generated_operator)


@pytest.mark.parametrize("buckets", [1, 3, 7])
def test_bucketed_profiles_equal_the_whole_profile(
    tables: dict[str, pl.LazyFrame], tmp_path: Path, buckets: int
) -> None:
    cfg = FeaturesConfig()
    whole = build_profile(tables, CUT, cfg).collect()
    split = split_tables(tables, tmp_path / "buckets", buckets)
    # every keyed table is split, calls are not (the graph spans buckets)
    assert sorted(split.schemas) == sorted(n for n in tables if n != "calls")
    rows = {
        name: sum(split.tables(b)[name].select(pl.len()).collect().item() for b in range(buckets))
        for name in split.schemas
    }
    assert rows == {n: tables[n].select(pl.len()).collect().item() for n in split.schemas}
    seen: list[int] = []
    profile = bucketed_profile(split, tables, CUT, cfg, on_bucket=lambda i, n: seen.append(i))
    assert seen == list(range(1, buckets + 1))
    assert_frame_equal(profile, whole)  # exact: the same Polars functions per customer


def test_a_sampled_profile_reads_only_its_buckets(
    tables: dict[str, pl.LazyFrame], tmp_path: Path
) -> None:
    cfg = FeaturesConfig()
    sample = CustomerSample(share=0.2)
    split = split_tables(tables, tmp_path / "buckets", 7)
    assert buckets_holding(sample, 7) == range(2)
    for b in range(2, 7):  # a bucket the sample does not need is never read
        for name in split.schemas:
            for f in (split.directory / name / f"_bucket={b}").glob("*.parquet"):
                f.unlink()
    sampled = bucketed_profile(split, tables, CUT, cfg, sample)
    assert_frame_equal(sampled, build_profile(tables, CUT, cfg, sample).collect())
    assert 0 < sampled.height < build_profile(tables, CUT, cfg).collect().height


def test_buckets_hold_every_sample() -> None:
    ids = pl.DataFrame({"customer_id": range(50_000)})
    for k in (1, 2, 3, 10, 64):
        b = ids.select(bucket_expr(k)).to_series()
        assert (b.min(), b.max()) == (0, k - 1)
        for share in (1 / SAMPLE_BUCKETS, 0.01, 0.25, 0.5, 1.0):
            s = CustomerSample(share=share)
            inside = b.filter(ids.select(s.expr()).to_series())
            assert inside.max() is None or inside.max() < len(buckets_holding(s, k))
    # another seed's sample is spread over every bucket
    assert buckets_holding(CustomerSample(share=0.1, seed=3), 5) == range(5)


def test_bucket_count() -> None:
    assert bucket_count(10_000_000, EngineConfig()) == 10
    assert bucket_count(999_999, EngineConfig()) == 1
    assert bucket_count(5, EngineConfig(buckets=4)) == 4
    assert bucket_count(2_500, EngineConfig(bucket_customers=1_000)) == 3


def test_a_split_that_cannot_write_is_one_line(
    tables: dict[str, pl.LazyFrame], tmp_path: Path
) -> None:
    # a file where the scratch directory should be: the write fails as a full disk would
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")
    with pytest.raises(DataError, match=r"^splitting customers into 3 buckets under .*blocked"):
        split_tables(tables, blocked / "buckets", 3)
