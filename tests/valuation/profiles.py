"""The pipeline's per-run profile cache, for valuation tests that call the stage's functions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import polars as pl

from features import CustomerSample, PointInTime, build_profile, data_start


def cached_profiles(tables: dict[str, pl.LazyFrame]) -> Callable[..., pl.DataFrame]:
    """A ``profile_at(cut, sample)`` that builds each profile of ``tables`` once."""
    cache: dict[tuple[dt.date, object], pl.DataFrame] = {}

    def profile_at(cut: dt.date, sample: CustomerSample | None = None) -> pl.DataFrame:
        if (cut, sample) not in cache:
            cache[cut, sample] = build_profile(tables, cut, sample=sample).collect()
        return cache[cut, sample]

    return profile_at


def point_in_time(tables: dict[str, pl.LazyFrame], as_of: dt.date) -> PointInTime:
    """``tables`` at ``as_of`` as the pipeline hands them to valuation: cached profiles,
    everyone in the holdouts."""
    return PointInTime(as_of, tables, cached_profiles(tables), data_start(tables["transactions"]))
