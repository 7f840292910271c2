"""Rule-based dimensions: spend level (high / medium / low) and the age band passed through."""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

from crm_engine.config import FeaturesConfig, age_band_labels
from crm_engine.contracts import score_values
from crm_engine.parts import FrameParts, Parts, exact_quantiles

SPEND_LEVELS: tuple[str, ...] = tuple(reversed(score_values("spend_level")))
"""The ``crm.scores/v1`` spend levels, lowest first."""
AGE_BANDS: tuple[str, ...] = (*age_band_labels(FeaturesConfig().age_bands), "unknown")
"""The age bands of the default ``features.age_bands``, then ``unknown`` (no birth date)."""


def spend_cut_points(
    profile: pl.DataFrame | pl.LazyFrame | Parts,
    configured: list[float] | tuple[float, float] | None = None,
    column: str = "revenue_365d",
) -> tuple[float, float]:
    """The two spend cut points: the configured ones, or the tertiles of ``column``.

    Parameters
    ----------
    profile
        Customer profile holding ``column`` (null spend counts as 0); in parts (on the
        executors with Spark), the tertiles are aggregates of them
        (:func:`crm_engine.parts.exact_quantiles`).
    configured
        Two increasing cut points (low/medium, medium/high); None means tertiles.
    column
        Trailing-12-month spend column.

    Returns
    -------
    tuple of float
        ``(low_medium, medium_high)``; a customer is low when spend <= the first, high
        when spend > the second.

    Raises
    ------
    ValueError
        If the column is absent, the configured points are not two increasing numbers, or
        the profile is empty and no cut points are configured.
    """
    if configured is not None:
        if len(configured) != 2 or not configured[0] < configured[1]:
            raise ValueError(
                f"spend cut points must be two increasing numbers, got {list(configured)}"
            )
        return float(configured[0]), float(configured[1])
    parts = profile if isinstance(profile, Parts) else FrameParts(profile)
    if column not in parts.plan().collect_schema():
        raise ValueError(f"profile has no column {column!r} to derive spend levels from")
    spend = pl.col(column).cast(pl.Float64).fill_null(0.0)
    q = exact_quantiles(parts, spend, [1 / 3, 2 / 3])
    if q is None:
        raise ValueError(f"cannot derive spend tertiles: column {column!r} has no rows")
    return q[0], q[1]


def spend_level_expr(cut_points: tuple[float, float], column: str = "revenue_365d") -> pl.Expr:
    """``spend_level`` from trailing-12-month spend: low <= c1 < medium <= c2 < high.

    Parameters
    ----------
    cut_points
        From :func:`spend_cut_points`.
    column
        Spend column; null counts as 0 (no purchase in the window).
    """
    c1, c2 = cut_points
    spend = pl.col(column).cast(pl.Float64).fill_null(0.0)
    return (
        pl.when(spend <= c1)
        .then(pl.lit("low"))
        .when(spend <= c2)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("high"))
        .alias("spend_level")
    )


def profile_age_band(columns: Collection[str]) -> pl.Expr:
    """The profile's age band (``features.who`` computes it), ``"unknown"`` when missing.

    ``columns`` are the profile's: a profile without the column gets ``"unknown"`` throughout.
    """
    if "age_band" not in columns:
        return pl.lit("unknown").alias("age_band")
    return pl.col("age_band").cast(pl.String).fill_null("unknown").alias("age_band")


def add_bands(profile: pl.LazyFrame, cut_points: tuple[float, float]) -> pl.LazyFrame:
    """Pure stage: the profile with ``spend_level`` and a normalised ``age_band`` column.

    Parameters
    ----------
    profile
        Profile with ``revenue_365d`` and (optionally) ``age_band``.
    cut_points
        Spend cut points from :func:`spend_cut_points`.
    """
    age = profile_age_band(profile.collect_schema().names())
    return profile.with_columns(spend_level_expr(cut_points), age)
