"""Assigning customers to the fitted segments: one pure function of a slice of the profile
and the fitted models, called by training and by scoring with the registered model, here or on
the executors (``ProfileCache.map``). Light imports: a Spark worker imports it to unpickle the
mapper."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from crm_engine.contracts import labels_at
from features import pool_rare
from segmentation.bands import profile_age_band, spend_level_expr
from segmentation.cluster import Segmenter

__all__ = ["ASSIGN_ROWS", "PREVIOUS_LABEL", "assign_slice"]

ASSIGN_ROWS = 200_000
"""Customers assigned at a time here (without ``map_everyone``)."""

PREVIOUS_LABEL = "_previous_label"
"""The column :func:`assign_slice` adds with a previous model: its cluster label of the
customer (the migration counts; dropped after)."""


def assign_slice(
    batch: pl.DataFrame,
    *,
    model: Segmenter,
    cuts: tuple[float, float],
    keep: Mapping[str, frozenset[str]] | None,
    previous: Segmenter | None = None,
) -> pl.DataFrame:
    """The spend level, age band and segment of each customer of a slice of the profile: a
    pure function of the slice and the fitted model, so it runs wherever the rows are (on the
    executors with the Spark backend: ``ProfileCache.map``). Rare text values are pooled as
    for the fit (``keep``, :func:`features.pool_rare`; None: as they are). With ``previous``,
    its label of each customer too (:data:`PREVIOUS_LABEL`)."""
    needed = list(dict.fromkeys([*model.features_, *(previous.features_ if previous else [])]))
    frame = batch.select(needed)
    X = (frame if keep is None else pool_rare(frame, keep)).to_pandas()
    labels = model.predict(X)
    out = batch.select(
        pl.col("customer_id"),
        spend_level_expr(cuts),
        profile_age_band(batch.columns),
        pl.Series("segment_id", model.segment_ids_[labels], dtype=pl.Int64),
        labels_at("segment_name", model.segment_names_, labels),
    )
    if previous is None:
        return out
    return out.with_columns(pl.Series(PREVIOUS_LABEL, previous.predict(X), dtype=pl.Int64))
