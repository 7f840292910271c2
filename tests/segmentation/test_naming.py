"""Segment names: readable, unique, never empty."""

from __future__ import annotations

import pandas as pd

from segmentation.naming import FALLBACK_NAME, name_segments


def test_names_read_from_the_strongest_traits() -> None:
    dev = pd.DataFrame(
        [
            {"revenue_365d": 1.5, "data_mb_12m": 2.0, "area_type=urban": 1.0, "age": -0.1},
            {
                "revenue_365d": -0.2,
                "voice_min_12m": 0.8,
                "area_type=rural": 1.4,
                "age": 2.0,
                "dropped_call_rate_mean_3m": 1.1,
                "latency_ms_mean_3m": 0.9,
            },
        ]
    )
    names = name_segments(dev)
    assert names[0] == "High-spend urban data streamers"
    assert names[1] == "Rural seniors with poor coverage"  # voice is the 4th trait


def test_duplicates_get_the_next_trait_then_a_number() -> None:
    dev = pd.DataFrame(
        [
            {"data_mb_12m": 2.0, "age": -1.0, "sms_12m": 0.0, "tenure_days": 0.5},
            {"data_mb_12m": 2.0, "age": -1.0, "sms_12m": 0.0, "tenure_days": -0.5},
            {"data_mb_12m": 2.0, "age": -1.0, "sms_12m": 0.0, "tenure_days": 0.0},
            {"data_mb_12m": 2.0, "age": -1.0, "sms_12m": 0.0, "tenure_days": 0.0},
        ]
    )
    names = name_segments(dev, base_traits=2)
    assert len(set(names)) == 4
    assert names[0] == "Long-tenure young data streamers"
    assert names[1] == "New young data streamers"
    assert names[2:] == ["Young data streamers 1", "Young data streamers 2"]


def test_featureless_segments_get_a_fallback_name() -> None:
    dev = pd.DataFrame([{"age": 0.01, "data_mb_12m": float("nan")}, {"age": 0.0}])
    names = name_segments(dev)
    assert all(names)
    assert names == [f"{FALLBACK_NAME} 1", f"{FALLBACK_NAME} 2"]
