"""Profit contribution: trailing-12-month revenue times margin, minus the cost to serve."""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

INTERACTION_COLUMNS: tuple[str, ...] = ("complaints_365d", "inquiries_365d")


def profit_contribution_expr(
    columns: Collection[str], margin: float, cost_per_interaction: float
) -> pl.Expr:
    """``revenue_365d * margin - cost_per_interaction * (complaints_365d + inquiries_365d)``.

    Parameters
    ----------
    columns
        The profile's column names: interaction counts that are absent count as 0, and so
        does a null revenue or count.
    margin
        Share of revenue that is profit.
    cost_per_interaction
        Cost of handling one complaint or inquiry.

    Returns
    -------
    polars.Expr
        Float64 expression named ``profit_contribution``.
    """
    if "revenue_365d" not in columns:
        raise ValueError("profit contribution needs the profile column 'revenue_365d'")
    revenue = pl.col("revenue_365d").cast(pl.Float64).fill_null(0.0)
    interactions: pl.Expr = pl.lit(0.0)
    for c in INTERACTION_COLUMNS:
        if c in columns:
            interactions = interactions + pl.col(c).cast(pl.Float64).fill_null(0.0)
    return (revenue * margin - interactions * cost_per_interaction).alias("profit_contribution")
