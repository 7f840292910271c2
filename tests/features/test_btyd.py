"""BTYD summary equals lifetimes' ``summary_data_from_transaction_data``, value for value."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import features


def _lifetimes_summary(purchases: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes.utils import summary_data_from_transaction_data

        summary = summary_data_from_transaction_data(
            purchases.select("customer_id", "ts", "amount").to_pandas(),
            "customer_id",
            "ts",
            monetary_value_col="amount",
            freq="D",
            observation_period_end=pd.Timestamp(as_of - dt.timedelta(days=1)),
        )
    return (
        pl.from_pandas(summary.reset_index())
        .select(
            pl.col("customer_id").cast(pl.Int64),
            pl.col("frequency").cast(pl.Int64),
            pl.col("recency").cast(pl.Float64),
            pl.col("T").cast(pl.Float64),
            pl.col("monetary_value").cast(pl.Float64),
        )
        .sort("customer_id")
    )


def _ours(transactions: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    return (
        features.btyd_summary(transactions.lazy(), as_of)
        .drop("has_purchase")
        .sort("customer_id")
        .collect(engine="streaming")
    )


def _assert_equivalent(transactions: pl.DataFrame, as_of: dt.date) -> int:
    # lifetimes gets the purchase rows (amount > 0) seen at as_of; ours filters them itself.
    purchases = transactions.filter(
        (pl.col("amount") > 0) & (pl.col("ts") < dt.datetime.combine(as_of, dt.time()))
    )
    expected = _lifetimes_summary(purchases, as_of)
    ours = _ours(transactions, as_of)
    assert ours.height == expected.height > 0
    assert_frame_equal(ours, expected, check_exact=False, rel_tol=1e-12, abs_tol=1e-9)
    return ours.height


@pytest.fixture(scope="module")
def cdnow_like() -> pl.DataFrame:
    """lifetimes' example transactions (date, id), seeded amounts, refunds and times."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes.datasets import load_transaction_data

        raw = load_transaction_data()
    rng = np.random.default_rng(7)
    n = len(raw)
    amount = np.round(rng.gamma(2.0, 15.0, n), 2)
    amount[rng.random(n) < 0.05] *= -1  # refunds: not purchases
    seconds = rng.integers(0, 86_400, n)
    return pl.DataFrame(
        {
            "customer_id": raw["id"].to_numpy().astype(np.int64),
            "ts": pd.to_datetime(raw["date"]).to_numpy().astype("datetime64[us]")
            + seconds.astype("timedelta64[s]"),
            "amount": amount,
            "category": "topup",
            "channel": "app",
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))


@pytest.mark.parametrize("as_of", [dt.date(2015, 1, 1), dt.date(2014, 6, 17)])
def test_equals_lifetimes_on_its_example_data(cdnow_like: pl.DataFrame, as_of: dt.date) -> None:
    assert _assert_equivalent(cdnow_like, as_of) > 1000


def test_equals_lifetimes_on_generated_data(tmp_path: Path) -> None:
    from crm_engine import generator
    from crm_engine.io import load_tables

    generator.generate(tmp_path, customers=1_500, months=18, seed=11)
    tables = load_tables(tmp_path)
    transactions = tables["transactions"].collect()
    as_of = features.default_as_of(tables["transactions"])
    for cut in (as_of, as_of - dt.timedelta(days=100)):
        assert _assert_equivalent(transactions, cut) > 100


def test_same_day_purchases_are_summed_and_refunds_ignored() -> None:
    t = dt.datetime
    tx = pl.DataFrame(
        {
            "customer_id": [1, 1, 1, 1, 1, 2],
            "ts": [t(2024, 1, 1, 8), t(2024, 1, 1, 20), t(2024, 1, 3), t(2024, 1, 3, 5),
                   t(2024, 1, 7), t(2024, 1, 9)],
            "amount": [5.0, 6.0, 2.0, 4.0, -10.0, 3.0],
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))  # fmt: skip
    out = _ours(tx, dt.date(2024, 1, 10)).to_dicts()
    assert out[0] == {"customer_id": 1, "frequency": 1, "recency": 2.0, "T": 8.0,
                      "monetary_value": 6.0}  # fmt: skip
    assert out[1] == {"customer_id": 2, "frequency": 0, "recency": 0.0, "T": 0.0,
                      "monetary_value": 0.0}  # fmt: skip
