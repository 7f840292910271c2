"""The segmentation stage on in-memory frames."""

from __future__ import annotations

import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from crm_engine.config import SegmentationConfig
from segmentation import (
    ASSIGNMENT_SCHEMA,
    MissingFeatureError,
    SegmentationResult,
    SegmentationWarning,
    segment_customers,
)


def test_every_customer_gets_bands_and_a_named_segment(
    blobs: pl.DataFrame, blobs_result: SegmentationResult
) -> None:
    a = blobs_result.assignments
    assert a.schema == ASSIGNMENT_SCHEMA
    assert a["customer_id"].to_list() == blobs["customer_id"].to_list()
    assert a.null_count().sum_horizontal().item() == 0
    names = blobs_result.model.segment_names_
    assert len(set(names)) == len(names) and all(n.strip() for n in names)
    assert a["segment_name"].n_unique() == blobs_result.model.k_
    assert set(a["spend_level"]) == {"low", "medium", "high"}
    assert "unknown" in set(a["age_band"])
    rep = blobs_result.report
    assert rep.k == 5 and rep.aligned is False
    assert [s.k for s in rep.scores] == [3, 4, 5, 6, 7]
    labels = blobs.join(a, on="customer_id")
    assert adjusted_rand_score(labels["persona"], labels["segment_id"]) >= 0.9


def test_previous_model_keeps_ids_and_yields_migration(
    blobs: pl.DataFrame, blobs_result: SegmentationResult
) -> None:
    cfg = SegmentationConfig(k_min=3, k_max=7, seed=123)
    again = segment_customers(blobs, cfg, previous=blobs_result.model)
    same = (again.assignments["segment_id"] == blobs_result.assignments["segment_id"]).mean()
    assert same >= 0.95
    assert again.report.aligned is True
    assert again.report.same_segment_share == pytest.approx(same)
    assert again.migration is not None
    assert again.migration["customers"].sum() == blobs.height


def test_configured_missing_feature_stops_the_stage(blobs: pl.DataFrame) -> None:
    cfg = SegmentationConfig(k=3, features=["age", "vibes_12m"])
    with pytest.raises(MissingFeatureError, match="'vibes_12m'"):
        segment_customers(blobs.head(100), cfg)


def test_previous_model_with_other_features_warns_and_starts_fresh(
    blobs: pl.DataFrame, blobs_result: SegmentationResult
) -> None:
    lean = blobs.drop("sms_12m")
    with pytest.warns(SegmentationWarning, match="sms_12m"):
        out = segment_customers(lean, SegmentationConfig(k=5), previous=blobs_result.model)
    assert out.migration is None and out.report.aligned is False


def test_empty_profile_is_an_error(blobs: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="empty profile"):
        segment_customers(blobs.head(0), SegmentationConfig())
