"""Validation against the synthetic operator's planted personas (ground truth in ``_truth``)."""

from __future__ import annotations

import polars as pl
from sklearn.metrics import adjusted_rand_score

from crm_engine.config import SegmentationConfig
from segmentation import segment_customers


def test_recovers_generated_personas(generated_profile: pl.DataFrame) -> None:
    result = segment_customers(generated_profile, SegmentationConfig())  # k="auto", defaults
    a = result.assignments.join(
        generated_profile.select("customer_id", "persona"), on="customer_id"
    )
    assert a["persona"].null_count() == 0
    ari = adjusted_rand_score(a["persona"], a["segment_id"])
    assert ari >= 0.7, f"ARI={ari:.3f} with k={result.model.k_}"
    assert result.model.k_ == 6  # six planted personas
    names = result.model.segment_names_
    assert len(set(names)) == len(names) and all(names)


def test_rerun_with_other_seed_keeps_segment_ids(generated_profile: pl.DataFrame) -> None:
    first = segment_customers(generated_profile, SegmentationConfig(seed=0))
    second = segment_customers(generated_profile, SegmentationConfig(seed=1), previous=first.model)
    kept = (first.assignments["segment_id"] == second.assignments["segment_id"]).mean()
    assert kept >= 0.95
    assert second.report.same_segment_share >= 0.95
