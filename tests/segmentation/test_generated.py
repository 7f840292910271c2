"""Validation against the synthetic operator's planted personas (ground truth in ``_truth``)."""

from __future__ import annotations

import re

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


def test_names_are_true_of_most_of_their_segment(generated_profile: pl.DataFrame) -> None:
    from segmentation.naming import _OCCUPATION_NOUNS, first_word

    result = segment_customers(generated_profile, SegmentationConfig())
    names = result.model.segment_names_
    assert len({first_word(n) for n in names}) == len(names), names
    a = result.assignments.join(
        generated_profile.select("customer_id", "occupation", "area_type", "plan_type", "region"),
        on="customer_id",
    )
    claims = 0
    for column in ("occupation", "area_type", "plan_type", "region"):
        shares = (
            a.group_by("segment_name", column)
            .len()
            .with_columns((pl.col("len") / pl.col("len").sum().over("segment_name")).alias("p"))
        )
        for name, value, _, share in shares.iter_rows():
            forms = {value.replace("_", " "), _OCCUPATION_NOUNS.get(value, value)}
            pattern = "|".join(re.escape(f.lower()) for f in forms)
            if re.search(rf"\b({pattern})\b", name.lower()):
                claims += 1
                assert share > 0.5, f"{name!r} claims {column}={value} for {share:.0%}"
    assert claims >= 3  # the names do claim categories (urban, prepaid, retirees, ...)
