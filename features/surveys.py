"""Surveys: the last NPS and CSAT answered before ``as_of``, how long ago, and the mean NPS of
every answer."""

from __future__ import annotations

import datetime as dt

import polars as pl

from features.window import attach, observed

__all__ = ["add_surveys", "latest_survey", "surveys_columns"]


def surveys_columns() -> dict[str, pl.DataType]:
    """Declared output of :func:`add_surveys`."""
    return {
        "last_nps": pl.Int64(),
        "last_csat": pl.Int64(),
        "days_since_survey": pl.Int64(),
        "nps_mean": pl.Float64(),
    }


def latest_survey(surveys: pl.LazyFrame, pick: str = "last") -> pl.LazyFrame:
    """One row per customer: the last (or first) survey of ``surveys``.

    Uses a max/min of ``answered_at`` joined back (streaming-native, no per-customer sort).
    Answers at the same instant are resolved deterministically by the highest score.

    Returns
    -------
    pl.LazyFrame
        ``customer_id``, ``answered_at``, ``nps``, ``csat``.
    """
    at = pl.col("answered_at")
    when = (at.max() if pick == "last" else at.min()).alias("answered_at")
    chosen = surveys.group_by("customer_id").agg(when)
    return (
        surveys.select("customer_id", "answered_at", "nps", "csat")
        .join(chosen, on=["customer_id", "answered_at"], how="inner")
        .group_by("customer_id")
        .agg(at.first(), pl.col("nps").max(), pl.col("csat").max())
    )


def add_surveys(profile: pl.LazyFrame, surveys: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """Add ``last_nps``, ``last_csat``, ``days_since_survey`` and ``nps_mean`` (null when never
    surveyed).

    ``days_since_survey`` counts days from the answer's day to ``as_of``. ``nps_mean`` is the
    mean NPS of every answer before ``as_of``: a customer's satisfaction moves slowly and each
    answer is a noisy reading of it, so the mean of several says more than the last one.
    """
    seen = observed(surveys, "surveys", as_of)
    mean = seen.group_by("customer_id").agg(pl.col("nps").cast(pl.Float64).mean().alias("nps_mean"))
    last = latest_survey(seen).select(
        "customer_id",
        pl.col("nps").cast(pl.Int64).alias("last_nps"),
        pl.col("csat").cast(pl.Int64).alias("last_csat"),
        (pl.lit(as_of) - pl.col("answered_at").dt.date())
        .dt.total_days()
        .cast(pl.Int64)
        .alias("days_since_survey"),
    )
    return attach(profile, last.join(mean, on="customer_id", how="left"))
