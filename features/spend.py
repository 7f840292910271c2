"""Spend: trailing revenue, monthly average, trend, category mix, refunds, last payment."""

from __future__ import annotations

import datetime as dt

import polars as pl

from crm_engine.config import FeaturesConfig
from features.window import attach, days_before, observed

__all__ = ["SPEND_CATEGORIES", "add_spend", "spend_columns"]

SPEND_CATEGORIES = ("topup", "bill", "addon", "device", "other")
_DAYS_PER_MONTH = 365.0 / 12.0
_YEAR = 365
_TREND_DAYS = 90


def spend_columns(cfg: FeaturesConfig) -> dict[str, pl.DataType]:
    """Declared output of :func:`add_spend`."""
    cols: dict[str, pl.DataType] = {f"revenue_{w}d": pl.Float64() for w in cfg.spend_windows_days}
    cols["avg_monthly_spend"] = pl.Float64()
    cols["spend_trend"] = pl.Float64()
    cols.update({f"share_{c}": pl.Float64() for c in SPEND_CATEGORIES})
    cols["refund_count"] = pl.Int64()
    cols["refund_amount"] = pl.Float64()
    cols["days_since_last_payment"] = pl.Int64()
    return cols


def _sum_if(cond: pl.Expr, value: pl.Expr) -> pl.Expr:
    return pl.when(cond).then(value).otherwise(0.0).sum()


def add_spend(
    profile: pl.LazyFrame, transactions: pl.LazyFrame, as_of: dt.date, cfg: FeaturesConfig
) -> pl.LazyFrame:
    """Add the spend columns to ``profile`` (which must hold ``customer_id``, ``tenure_days``).

    Definitions (all over transactions with ``ts < as_of``):

    - ``revenue_<w>d``: sum of amounts, refunds included, over the trailing ``w`` days.
    - ``avg_monthly_spend``: the trailing-365-day sum divided by the months observed (12, or
      the tenure in months when shorter, at least one month).
    - ``spend_trend``: ``(a - b) / (a + b)`` of purchase amounts (amount > 0) in the last 90
      days (a) and the 90 days before (b); 0 when both are 0; in [-1, 1].
    - ``share_<category>``: share of the trailing-365-day purchase amount per category
      (exactly ``topup``, ``bill``, ``addon``, ``device``; anything else or missing is
      ``other``); 0 without spend.
    - ``refund_count`` / ``refund_amount``: number and (positive) total of refunds
      (amount < 0) in the trailing 365 days.
    - ``days_since_last_payment``: days from the last purchase day to ``as_of``; null if none.
    """
    ts, amount = pl.col("ts"), pl.col("amount")
    positive = amount > 0
    in_year = ts >= pl.lit(days_before(as_of, _YEAR))
    recent = ts >= pl.lit(days_before(as_of, _TREND_DAYS))
    previous = (ts >= pl.lit(days_before(as_of, 2 * _TREND_DAYS))) & ~recent
    # Exact comparison: normalising 30M strings per run costs more than the rest of the stage.
    category = pl.col("category")
    known = [c for c in SPEND_CATEGORIES if c != "other"]

    aggs: list[pl.Expr] = [
        _sum_if(ts >= pl.lit(days_before(as_of, w)), amount).alias(f"revenue_{w}d")
        for w in cfg.spend_windows_days
    ]
    aggs += [
        _sum_if(in_year, amount).alias("_revenue_year"),
        _sum_if(positive & recent, amount).alias("_spend_recent"),
        _sum_if(positive & previous, amount).alias("_spend_previous"),
        _sum_if(positive & in_year, amount).alias("_spend_year"),
        *[
            _sum_if(positive & in_year & (category == c), amount).alias(f"_spend_{c}")
            for c in known
        ],
        _sum_if(positive & in_year & ~category.is_in(known).fill_null(False), amount).alias(
            "_spend_other"
        ),
        (in_year & (amount < 0)).cast(pl.Int64).sum().alias("refund_count"),
        _sum_if(in_year & (amount < 0), -amount).alias("refund_amount"),
        pl.when(positive).then(ts).max().alias("_last_payment"),
    ]
    per_customer = (
        observed(transactions, "transactions", as_of)
        .select("customer_id", "ts", "amount", "category")
        .group_by("customer_id")
        .agg(aggs)
    )
    fill: dict[str, pl.Expr | float | int | bool] = {
        f"revenue_{w}d": 0.0 for w in cfg.spend_windows_days
    }
    fill.update(
        {
            "_revenue_year": 0.0,
            "_spend_recent": 0.0,
            "_spend_previous": 0.0,
            "_spend_year": 0.0,
            **{f"_spend_{c}": 0.0 for c in SPEND_CATEGORIES},
            "refund_count": 0,
            "refund_amount": 0.0,
        }
    )
    months = (
        pl.min_horizontal(pl.col("tenure_days"), pl.lit(_YEAR)).cast(pl.Float64) / _DAYS_PER_MONTH
    ).clip(lower_bound=1.0)
    a, b = pl.col("_spend_recent"), pl.col("_spend_previous")
    trend = pl.when((a + b) > 0).then((a - b) / (a + b)).otherwise(0.0).clip(-1.0, 1.0)
    year = pl.col("_spend_year")
    shares = [
        pl.when(year > 0).then(pl.col(f"_spend_{c}") / year).otherwise(0.0).alias(f"share_{c}")
        for c in SPEND_CATEGORIES
    ]
    days_since = (pl.lit(as_of) - pl.col("_last_payment").dt.date()).dt.total_days()
    return (
        attach(profile, per_customer, fill)
        .with_columns(
            (pl.col("_revenue_year") / months).alias("avg_monthly_spend"),
            trend.alias("spend_trend"),
            *shares,
            days_since.cast(pl.Int64).alias("days_since_last_payment"),
        )
        .drop(
            "_revenue_year",
            "_spend_recent",
            "_spend_previous",
            "_spend_year",
            *[f"_spend_{c}" for c in SPEND_CATEGORIES],
            "_last_payment",
        )
    )
