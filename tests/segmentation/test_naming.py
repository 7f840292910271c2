"""Segment names: readable, true of most of the segment, unique, never empty."""

from __future__ import annotations

import pandas as pd

from segmentation.naming import FALLBACK_NAME, first_word, name_segments


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
    shares = pd.DataFrame([{"area_type=urban": 0.9}, {"area_type=rural": 0.7}])
    names = name_segments(dev, shares=shares)
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


def test_a_category_is_claimed_only_for_the_majority() -> None:
    # homemakers are over-represented (2.0 sd) but only 27% of the segment
    dev = pd.DataFrame(
        [{"revenue_365d": 1.0, "occupation=homemaker": 2.0, "occupation=employee": 0.6}]
    )
    minority = pd.DataFrame([{"occupation=homemaker": 0.27, "occupation=employee": 0.53}])
    assert name_segments(dev, shares=minority) == ["High-spend employees"]
    majority = pd.DataFrame([{"occupation=homemaker": 0.51, "occupation=employee": 0.30}])
    assert name_segments(dev, shares=majority) == ["High-spend homemakers"]
    # without shares nothing vouches for a category
    assert name_segments(dev) == ["High-spend customers"]


def test_a_numeric_trait_needs_the_median_beyond_the_threshold() -> None:
    # a few heavy users lift the mean data use; the median member is average
    dev = pd.DataFrame([{"data_mb_12m": 1.2, "age": -0.8}])
    skewed = pd.DataFrame([{"data_mb_12m": 0.1, "age": -0.7}])
    assert name_segments(dev, medians=skewed) == ["Young adults"]
    held = pd.DataFrame([{"data_mb_12m": 0.5, "age": -0.7}])
    assert name_segments(dev, medians=held) == ["Young data streamers"]
    # a median on the other side of the mean does not hold either
    assert name_segments(dev, medians=pd.DataFrame([{"data_mb_12m": -0.4, "age": -0.7}])) == [
        "Young adults"
    ]


def test_no_two_names_begin_alike() -> None:
    dev = pd.DataFrame(
        [
            {"revenue_365d": 1.5, "voice_min_12m": 1.0, "plan_type=postpaid": 1.2},
            {"revenue_365d": 1.2, "sms_12m": 0.9, "area_type=urban": 0.5},
            {"revenue_365d": -1.0, "age": 1.5},
            {"revenue_365d": -0.9, "age": 1.4, "tenure_days": -0.8},
        ]
    )
    shares = pd.DataFrame(
        [{"plan_type=postpaid": 0.9}, {"area_type=urban": 0.8}, {}, {}], index=range(4)
    )
    names = name_segments(dev, shares=shares)
    # the stronger high spender keeps the word; the other is led by a trait of its own
    assert names == [
        "High-spend postpaid callers",
        "Urban high-spend texters",
        "Low-spend seniors",
        "New low-spend seniors",
    ]
    assert len({first_word(n) for n in names}) == len(names)
    assert first_word("Seniors with poor coverage") == first_word("Senior callers")
