"""The segment profile table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segmentation import PROFILE_SCHEMA, SegmentationResult, segment_profiles


def test_profile_table_sizes_values_and_words(
    blobs: pl.DataFrame, blobs_result: SegmentationResult
) -> None:
    prof = blobs_result.profiles
    assert prof.schema == PROFILE_SCHEMA
    assert prof["size"].sum() == blobs.height
    assert abs(prof["share"].sum() - 1.0) < 1e-9
    assert prof["clv_mean"].null_count() == prof.height  # no scores given
    assert prof["distinguishing"].str.count_matches(";").to_list() == [2] * prof.height
    seniors = prof.filter(pl.col("top_occupations").str.starts_with("retired"))
    assert seniors.height == 1
    assert "age" in seniors["distinguishing"].item()
    assert "years above average" in seniors["distinguishing"].item()


def test_scores_are_averaged_per_segment(
    blobs: pl.DataFrame, blobs_result: SegmentationResult
) -> None:
    a = blobs_result.assignments
    scores = a.select(
        "customer_id",
        (pl.col("segment_id") * 10.0).alias("clv"),
        pl.lit(0.25).alias("churn_probability"),
    )
    prof = segment_profiles(a, blobs, blobs_result.model.features_, scores)
    assert prof["clv_mean"].to_list() == [s * 10.0 for s in prof["segment_id"].to_list()]
    assert prof["churn_probability_mean"].to_list() == [0.25] * prof.height
    mean_rev = (
        blobs.join(a, on="customer_id")
        .group_by("segment_id")
        .agg(pl.col("revenue_365d").mean())
        .sort("segment_id")
    )
    np.testing.assert_allclose(prof["revenue_365d_mean"], mean_rev["revenue_365d"], rtol=1e-12)


def test_assignments_in_another_order_give_the_same_table(
    blobs: pl.DataFrame, blobs_result: SegmentationResult, tmp_path: Path
) -> None:
    """The same table from the assignments in the profile's order (put side by side) or in
    another (joined), and from the profile as a frame or as a plan over its file (the run's
    profile: streamed through the aggregates)."""
    a = blobs_result.assignments
    features = blobs_result.model.features_
    aligned = segment_profiles(a, blobs, features)  # the profile's own rows: put side by side
    shuffled = segment_profiles(a.sample(fraction=1.0, shuffle=True, seed=1), blobs, features)
    assert not a.sample(fraction=1.0, shuffle=True, seed=1)["customer_id"].equals(
        blobs["customer_id"]
    )  # so joined
    assert_frame_equal(aligned, shuffled, check_exact=False, rtol=1e-12)
    blobs.write_parquet(tmp_path / "profile.parquet")
    planned = segment_profiles(a, pl.scan_parquet(tmp_path / "profile.parquet"), features)
    assert_frame_equal(aligned, planned, check_exact=False, rel_tol=1e-12)


def test_the_table_added_up_from_parts_is_the_table_of_everyone(
    blobs: pl.DataFrame, blobs_result: SegmentationResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted, summed and spread part by part (slices of 97 customers, as the executors count
    their files), the table is the one of everyone at once: sizes, top values and what sets a
    segment apart exactly, means to 1e-12 (added in another order)."""
    from crm_engine import parts

    a = blobs_result.assignments
    features = blobs_result.model.features_
    whole = segment_profiles(a, blobs, features)
    monkeypatch.setattr(parts, "WRITE_ROWS", 97)
    sliced = segment_profiles(a, blobs, features)
    assert blobs.height > 10 * 97
    assert_frame_equal(whole, sliced, check_exact=False, rel_tol=1e-12)
    assert sliced["distinguishing"].to_list() == whole["distinguishing"].to_list()
