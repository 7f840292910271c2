"""Usage: monthly means over the trailing 3 and 12 complete months, trends, zero-usage share."""

from __future__ import annotations

import datetime as dt

import polars as pl

from features.window import attach, month_offset, observed, trailing_months

__all__ = ["USAGE_MEASURES", "add_usage", "usage_columns"]

# usage column -> feature prefix
USAGE_MEASURES = {"data_mb": "data_mb", "voice_min": "voice_min", "sms": "sms"}
_TRENDS = {"data_mb": "data_trend", "voice_min": "voice_trend"}


def usage_columns() -> dict[str, pl.DataType]:
    """Declared output of :func:`add_usage`."""
    cols: dict[str, pl.DataType] = {}
    for months in (3, 12):
        cols.update({f"{p}_{months}m": pl.Float64() for p in USAGE_MEASURES.values()})
    cols.update({name: pl.Float64() for name in _TRENDS.values()})
    cols["zero_usage_share_12m"] = pl.Float64()
    return cols


def _mean_if(cond: pl.Expr, value: pl.Expr) -> pl.Expr:
    """Mean of ``value`` over the rows where ``cond`` holds (null when none)."""
    return pl.when(cond).then(value).mean()


def _trend(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    a, b = a.fill_null(0.0), b.fill_null(0.0)
    return pl.when((a + b) > 0).then((a - b) / (a + b)).otherwise(0.0)


def add_usage(profile: pl.LazyFrame, usage: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """Add the usage columns to ``profile``.

    Only months that end on or before ``as_of`` are seen. ``<measure>_3m`` / ``_12m`` are
    means over the customer's monthly rows in the trailing 3 / 12 complete months (null when
    there is none). ``data_trend`` / ``voice_trend`` are ``(a - b) / (a + b)`` of the means
    over the last 3 months (a) and the 3 months before (b), a missing mean counting as 0,
    and 0 when both are 0. ``zero_usage_share_12m`` is the share of the monthly rows in the
    trailing 12 months with no data, voice or SMS at all (null without rows).
    """
    start3, _ = trailing_months(as_of, 3)
    start12, _ = trailing_months(as_of, 12)
    start_prev = month_offset(start3, -3)
    month = pl.col("month")
    in3 = month >= pl.lit(start3)
    in12 = month >= pl.lit(start12)
    in_prev = (month >= pl.lit(start_prev)) & ~in3
    zero = (pl.col("data_mb") + pl.col("voice_min") + pl.col("sms")) <= 0
    aggs: list[pl.Expr] = []
    for col, prefix in USAGE_MEASURES.items():
        aggs.append(_mean_if(in3, pl.col(col)).alias(f"{prefix}_3m"))
        aggs.append(_mean_if(in12, pl.col(col)).alias(f"{prefix}_12m"))
    for col in _TRENDS:
        aggs.append(_mean_if(in_prev, pl.col(col)).alias(f"_{col}_prev3"))
    aggs.append(_mean_if(in12, zero.cast(pl.Float64)).alias("zero_usage_share_12m"))
    per_customer = (
        observed(usage, "usage", as_of)
        .filter(month >= pl.lit(min(start12, start_prev)))
        .group_by("customer_id")
        .agg(aggs)
    )
    return (
        attach(profile, per_customer)
        .with_columns(
            _trend(pl.col(f"{col}_3m"), pl.col(f"_{col}_prev3")).alias(name)
            for col, name in _TRENDS.items()
        )
        .drop(f"_{col}_prev3" for col in _TRENDS)
    )
