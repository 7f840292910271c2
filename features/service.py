"""Service: complaints and inquiries, topics, open tickets, resolution time, satisfaction."""

from __future__ import annotations

import datetime as dt

import polars as pl

from crm_engine.config import FeaturesConfig
from features.window import attach, days_before, observed

__all__ = ["COMPLAINT_RATE", "COMPLAINT_TOPICS", "add_service", "service_columns"]

COMPLAINT_TOPICS = ("network", "billing", "service", "device", "other")
_YEAR = 365
_RATE_DAYS = 730
_DAYS_PER_MONTH = 365.25 / 12
COMPLAINT_RATE = f"complaint_rate_{_RATE_DAYS}d"
"""Complaints a month over the trailing two years of the customer's tenure."""


def service_columns(cfg: FeaturesConfig) -> dict[str, pl.DataType]:
    """Declared output of :func:`add_service`."""
    cols: dict[str, pl.DataType] = {}
    for kind in ("complaints", "inquiries"):
        cols.update({f"{kind}_{w}d": pl.Int64() for w in cfg.service_windows_days})
    cols.update({f"complaints_{_YEAR}d_{t}": pl.Int64() for t in COMPLAINT_TOPICS})
    cols["open_tickets"] = pl.Int64()
    cols["resolution_hours_mean"] = pl.Float64()
    cols["resolution_hours_max"] = pl.Float64()
    cols["days_since_last_complaint"] = pl.Int64()
    cols["interaction_satisfaction_mean"] = pl.Float64()
    cols[COMPLAINT_RATE] = pl.Float64()
    return cols


def _count(cond: pl.Expr) -> pl.Expr:
    return cond.fill_null(False).cast(pl.Int64).sum()


def add_service(
    profile: pl.LazyFrame, interactions: pl.LazyFrame, as_of: dt.date, cfg: FeaturesConfig
) -> pl.LazyFrame:
    """Add the service columns to ``profile``.

    Only interactions opened before ``as_of`` are seen, and a ``closed_at`` on or after
    ``as_of`` is treated as not closed yet (so its satisfaction is not seen either).

    - ``complaints_<w>d`` / ``inquiries_<w>d``: interactions of that kind opened in the
      trailing ``w`` days;
    - ``complaints_365d_<topic>``: complaints of the trailing 365 days by topic (exactly
      network, billing, service, device; anything else or missing is ``other``);
    - ``open_tickets``: interactions of any kind still open at ``as_of``;
    - ``resolution_hours_mean`` / ``_max``: hours from opening to closing of the tickets
      closed in the trailing 365 days (null when none);
    - ``days_since_last_complaint``: days from the day of the last complaint to ``as_of``;
    - ``interaction_satisfaction_mean``: mean satisfaction of those closed tickets;
    - ``complaint_rate_730d``: complaints a month over the trailing 730 days, or over the
      customer's tenure (``profile``'s ``tenure_days``) when shorter. A customer's
      complaint-proneness is persistent, and a year holds too few complaints to tell it from
      chance; the rate puts a newcomer's few months on the scale of a two-year customer's.

    Counts (and the rate) are 0 for customers without interactions; the other columns are null.
    """
    opened, closed = pl.col("opened_at"), pl.col("closed_at")
    as_of_ts = dt.datetime.combine(as_of, dt.time())
    kind, topic = pl.col("kind"), pl.col("topic")
    complaint = kind == "complaint"
    known = [t for t in COMPLAINT_TOPICS if t != "other"]
    year = opened >= pl.lit(days_before(as_of, _YEAR))
    closed_before = closed.is_not_null() & (closed < pl.lit(as_of_ts))
    resolved = closed_before & (closed >= pl.lit(days_before(as_of, _YEAR)))
    hours = (closed - opened).dt.total_milliseconds().cast(pl.Float64) / 3_600_000.0

    aggs: list[pl.Expr] = []
    for name, is_kind in (("complaints", complaint), ("inquiries", kind == "inquiry")):
        aggs += [
            _count(is_kind & (opened >= pl.lit(days_before(as_of, w)))).alias(f"{name}_{w}d")
            for w in cfg.service_windows_days
        ]
    aggs += [
        _count(complaint & year & (topic == t)).alias(f"complaints_{_YEAR}d_{t}") for t in known
    ]
    aggs.append(
        _count(complaint & year & ~topic.is_in(known).fill_null(False)).alias(
            f"complaints_{_YEAR}d_other"
        )
    )
    aggs += [
        _count(~closed_before).alias("open_tickets"),
        pl.when(resolved).then(hours).mean().alias("resolution_hours_mean"),
        pl.when(resolved).then(hours).max().alias("resolution_hours_max"),
        pl.when(complaint).then(opened).max().alias("_last_complaint"),
        _count(complaint & (opened >= pl.lit(days_before(as_of, _RATE_DAYS)))).alias("_rate_n"),
        pl.when(resolved)
        .then(pl.col("satisfaction").cast(pl.Float64))
        .mean()
        .alias("interaction_satisfaction_mean"),
    ]
    per_customer = observed(interactions, "interactions", as_of).group_by("customer_id").agg(aggs)
    counts = [c for c, t in service_columns(cfg).items() if t == pl.Int64() and "days" not in c]
    days_since = (pl.lit(as_of) - pl.col("_last_complaint").dt.date()).dt.total_days()
    months = pl.col("tenure_days").clip(1, _RATE_DAYS).cast(pl.Float64) / _DAYS_PER_MONTH
    return (
        attach(profile, per_customer, dict.fromkeys([*counts, "_rate_n"], 0))
        .with_columns(
            days_since.cast(pl.Int64).alias("days_since_last_complaint"),
            (pl.col("_rate_n").cast(pl.Float64) / months).alias(COMPLAINT_RATE),
        )
        .drop("_last_complaint", "_rate_n")
    )
