"""Labels: churn within the horizon and the next loyalty class, on a hand-built example."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

import features
from tests.features._tiny import AS_OF, lazy


def test_labels_on_hand_built_example(tiny: dict[str, pl.DataFrame]) -> None:
    labels = features.build_labels(lazy(tiny), AS_OF, 90).collect()
    assert labels.schema == pl.Schema(features.labels_columns(90))
    assert labels.to_dicts() == [
        # 1 answers 10 on Jan 10 (first survey in the window; the 0 in May is later).
        {"customer_id": 1, "churned_within_90d": False, "loyalty_class": "promoter",
         "next_nps": 10},
        # 2 answers only on Apr 15, after as_of + 90 days.
        {"customer_id": 2, "churned_within_90d": False, "loyalty_class": None, "next_nps": None},
        # 5 churns on as_of itself: unknown at as_of, so a positive label.
        {"customer_id": 5, "churned_within_90d": True, "loyalty_class": "detractor",
         "next_nps": 5},
    ]  # fmt: skip


def test_labels_population_matches_profile(tiny: dict[str, pl.DataFrame]) -> None:
    for as_of in (dt.date(2023, 11, 20), AS_OF, dt.date(2024, 4, 1)):
        labels = features.build_labels(lazy(tiny), as_of, 30).collect()
        profile = features.build_profile(lazy(tiny), as_of).collect()
        assert labels["customer_id"].to_list() == profile["customer_id"].to_list()


def test_horizon_end_is_exclusive(tiny: dict[str, pl.DataFrame]) -> None:
    # 4 churned 2023-12-01: in [2023-11-01, 2023-12-01 + 0) only with a 31-day horizon.
    as_of = dt.date(2023, 11, 1)
    short = features.build_labels(lazy(tiny), as_of, 30).collect()
    long = features.build_labels(lazy(tiny), as_of, 31).collect()
    row = pl.col("customer_id") == 4
    assert short.filter(row)["churned_within_30d"].item() is False
    assert long.filter(row)["churned_within_31d"].item() is True


def test_loyalty_class_boundaries() -> None:
    nps = pl.DataFrame({"nps": [0, 6, 7, 8, 9, 10, None]}, schema={"nps": pl.Int64})
    out = nps.select(features.labels.loyalty_class(pl.col("nps")).alias("c"))["c"].to_list()
    assert out == ["detractor", "detractor", "passive", "passive", "promoter", "promoter", None]


def test_labels_without_surveys_and_bad_horizon(tiny: dict[str, pl.DataFrame]) -> None:
    frames = {k: v for k, v in tiny.items() if k != "surveys"}
    labels = features.build_labels(lazy(frames), AS_OF, 90).collect()
    assert labels["loyalty_class"].null_count() == labels.height == 3
    assert labels.schema == pl.Schema(features.labels_columns(90))
    with pytest.raises(ValueError, match="horizon_days=0"):
        features.build_labels(lazy(tiny), AS_OF, 0)


def test_realised_outcomes_windows_are_closed_on_the_left() -> None:
    """What the backtest compares with: churn in [start, churn_end), revenue (refunds too) and
    a positive purchase in [start, revenue_end); nothing outside counts."""
    start, churn_end, revenue_end = dt.date(2024, 7, 1), dt.date(2024, 9, 29), dt.date(2024, 10, 1)
    customers = pl.LazyFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "churn_date": [start, churn_end, None, dt.date(2024, 9, 28)],
        }
    )
    at = dt.datetime
    transactions = pl.LazyFrame(
        {
            "customer_id": [1, 1, 2, 2, 3, 3],
            "ts": [
                at(2024, 6, 30, 23, 59),  # before start: not counted
                at(2024, 7, 1, 0, 0),
                at(2024, 9, 30, 12),
                at(2024, 10, 1, 0, 0),  # on revenue_end: not counted
                at(2024, 8, 1),
                at(2024, 8, 2),
            ],
            "amount": [100.0, 10.0, 5.0, 1000.0, 8.0, -8.0],
        }
    )
    out = features.realised_outcomes(customers, transactions, start, churn_end, revenue_end)
    assert out.sort("customer_id").collect().to_dicts() == [
        {"customer_id": 1, "churned": True, "revenue": 10.0, "bought": True},
        {"customer_id": 2, "churned": False, "revenue": 5.0, "bought": True},
        {"customer_id": 3, "churned": False, "revenue": 0.0, "bought": True},  # bought, refunded
        {"customer_id": 4, "churned": True, "revenue": 0.0, "bought": False},
    ]
