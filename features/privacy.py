"""Rare category values are pooled into ``other`` before any model sees them.

A value held by a handful of customers (one village, one rare occupation) can identify them; no
model artifact (stored categories, one-hot columns, segment names) should name it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from crm_engine.parts import Parts

__all__ = ["OTHER", "frequent_values", "pool_rare"]

OTHER = "other"


def frequent_values(
    frame: pl.DataFrame | pl.LazyFrame | Parts, columns: Iterable[str], min_customers: int
) -> dict[str, frozenset[str]]:
    """Per text column of ``frame``, the values at least ``min_customers`` customers hold.

    Customers are the distinct ``customer_id`` values holding a value, so a frame with several
    rows per customer (stacked training snapshots) counts each customer once; a frame
    without ``customer_id`` counts rows. Of a plan only the counts are collected. A frame in
    parts (:class:`~crm_engine.parts.Parts`: everyone's profile, one row per customer; on the
    executors with Spark) is counted part by part where it lies, the counts added up.
    """
    names = list(columns)
    if isinstance(frame, Parts):
        counts = frame.aggregate(functools.partial(_holders, columns=names))
        counts = counts.group_by("column", "value").agg(pl.col("customers").sum())
    else:
        counts = _holders(frame, names)
    keep: dict[str, frozenset[str]] = {}
    for column in names:
        held = counts.filter((pl.col("column") == column) & (pl.col("customers") >= min_customers))
        keep[column] = frozenset(held.get_column("value").to_list())
    return keep


def _holders(frame: pl.DataFrame | pl.LazyFrame, columns: Sequence[str]) -> pl.DataFrame:
    """``column, value, customers``: per text column of ``frame``, the customers (distinct
    ``customer_id``, else rows) holding each value."""
    key = ["customer_id"] if "customer_id" in frame.collect_schema() else []
    holders = pl.col("customer_id").n_unique() if key else pl.len()
    counts = [
        frame.lazy()
        .select(pl.col(column).cast(pl.String).alias("value"), *key)
        .drop_nulls("value")
        .group_by("value")
        .agg(holders.cast(pl.Int64).alias("customers"))
        .select(pl.lit(column).alias("column"), "value", "customers")
        .collect()
        for column in columns
    ]
    schema = {"column": pl.String, "value": pl.String, "customers": pl.Int64}
    return pl.concat(counts) if counts else pl.DataFrame(schema=schema)


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
