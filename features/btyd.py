"""BTYD summary (frequency, recency, T, monetary value) with lifetimes' daily definitions."""

from __future__ import annotations

import datetime as dt

import polars as pl

from features.window import attach, observed

__all__ = ["add_btyd", "btyd_columns", "btyd_summary", "rfm_facts"]


def btyd_columns() -> dict[str, pl.DataType]:
    """Declared output of :func:`add_btyd`."""
    return {
        "has_purchase": pl.Boolean(),
        "frequency": pl.Int64(),
        "recency": pl.Float64(),
        "T": pl.Float64(),
        "monetary_value": pl.Float64(),
    }


def btyd_summary(transactions: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """Per-customer BTYD summary of the purchases before ``as_of``.

    Equal, value for value, to ``lifetimes.utils.summary_data_from_transaction_data(df,
    "customer_id", "ts", monetary_value_col="amount", freq="D",
    observation_period_end=as_of - 1 day)`` on the purchase rows (``amount > 0``):

    - ``frequency``: distinct purchase days minus one (repeat purchase days);
    - ``recency``: days from the first to the last purchase day;
    - ``T``: days from the first purchase day to the last observed day (``as_of - 1``);
    - ``monetary_value``: mean of the per-day summed amounts over the repeat purchase days
      (the first purchase day excluded), 0 when ``frequency`` is 0.

    Only customers with at least one purchase get a row. Built from streaming-native
    aggregations (min, max, n_unique, sum) and one equi-join: no per-day intermediate frame
    and no per-customer sort.
    """
    last_day = as_of - dt.timedelta(days=1)
    day = pl.col("day")
    purchases = (
        observed(transactions, "transactions", as_of)
        .filter(pl.col("amount") > 0)
        .select("customer_id", pl.col("ts").dt.date().alias("day"), "amount")
    )
    first = purchases.group_by("customer_id").agg(day.min().alias("_first_day"))
    return (
        purchases.join(first, on="customer_id", how="inner")
        .group_by("customer_id")
        .agg(
            (day.n_unique().cast(pl.Int64) - 1).alias("frequency"),
            pl.col("_first_day").min(),
            day.max().alias("_last_day"),
            # Sum of the repeat days' amounts; divided by their count it is the mean of the
            # per-day sums lifetimes computes.
            pl.when(day > pl.col("_first_day")).then(pl.col("amount")).sum().alias("_repeat_sum"),
        )
        .select(
            "customer_id",
            pl.lit(True).alias("has_purchase"),
            "frequency",
            (pl.col("_last_day") - pl.col("_first_day"))
            .dt.total_days()
            .cast(pl.Float64)
            .alias("recency"),
            (pl.lit(last_day) - pl.col("_first_day")).dt.total_days().cast(pl.Float64).alias("T"),
            pl.when(pl.col("frequency") > 0)
            .then(pl.col("_repeat_sum") / pl.col("frequency").cast(pl.Float64))
            .otherwise(0.0)
            .alias("monetary_value"),
        )
    )


def add_btyd(profile: pl.LazyFrame, transactions: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """Add the BTYD summary to ``profile`` (which must hold ``customer_id``, ``tenure_days``).

    Customers without a purchase get ``has_purchase=False``, ``frequency=0``, ``recency=0``,
    ``monetary_value=0`` and ``T = tenure_days - 1`` (signup day to the last observed day).
    """
    fill: dict[str, pl.Expr | float | int | bool] = {
        "has_purchase": False,
        "frequency": 0,
        "recency": 0.0,
        "T": (pl.col("tenure_days") - 1).cast(pl.Float64),
        "monetary_value": 0.0,
    }
    return attach(profile, btyd_summary(transactions, as_of), fill)


def rfm_facts(has_purchase: pl.Expr | None = None) -> list[pl.Expr]:
    """The scores contract's RFM facts from a profile's BTYD columns.

    ``has_purchase`` marks the customers with a purchase (default: the profile's column).

    - ``recency_days``: days from the last purchase day to ``as_of`` (``T - recency + 1``),
      null for a customer who never purchased;
    - ``monetary_avg``: mean spend of the repeat purchase days, null without a repeat day
      (the profile's ``monetary_value`` is 0 there, lifetimes' convention for its models).
    """
    has = (pl.col("has_purchase") if has_purchase is None else has_purchase).fill_null(False)
    return [
        pl.when(has)
        .then((pl.col("T") - pl.col("recency") + 1).round(0))
        .otherwise(None)
        .cast(pl.Int64)
        .alias("recency_days"),
        pl.when(has & (pl.col("frequency") > 0))
        .then(pl.col("monetary_value"))
        .otherwise(None)
        .cast(pl.Float64)
        .alias("monetary_avg"),
    ]
