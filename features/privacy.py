"""Rare category values are pooled into ``other`` before any model sees them.

A value held by a handful of customers (one village, one rare occupation) can identify them; no
model artifact (stored categories, one-hot columns, segment names) should name it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import polars as pl

__all__ = ["OTHER", "frequent_values", "pool_rare"]

OTHER = "other"


def frequent_values(
    frame: pl.DataFrame | pl.LazyFrame, columns: Iterable[str], min_customers: int
) -> dict[str, frozenset[str]]:
    """Per text column of ``frame``, the values at least ``min_customers`` customers hold.

    Customers are the distinct ``customer_id`` values holding a value, so a frame with several
    rows per customer (stacked training snapshots) counts each customer once; a frame
    without ``customer_id`` counts rows. Of a plan only the counts are collected.
    """
    keep: dict[str, frozenset[str]] = {}
    key = ["customer_id"] if "customer_id" in frame.collect_schema() else []
    holders = pl.col("customer_id").n_unique() if key else pl.len()
    for column in columns:
        counts = (
            frame.lazy()
            .select(pl.col(column).cast(pl.String), *key)
            .drop_nulls(column)
            .group_by(column)
            .agg(holders.alias("customers"))
            .collect()
        )
        kept = counts.filter(pl.col("customers") >= min_customers).get_column(column)
        keep[column] = frozenset(kept.to_list())
    return keep


def pool_rare(frame: pl.DataFrame, keep: Mapping[str, frozenset[str]]) -> pl.DataFrame:
    """``frame`` with every value outside ``keep[column]`` replaced by :data:`OTHER`.

    Nulls stay null; columns not in ``keep`` are untouched.
    """
    exprs = []
    for column, values in keep.items():
        col = pl.col(column).cast(pl.String)
        exprs.append(
            pl.when(col.is_null() | col.is_in(sorted(values)))
            .then(col)
            .otherwise(pl.lit(OTHER))
            .alias(column)
        )
    return frame.with_columns(exprs) if exprs else frame
