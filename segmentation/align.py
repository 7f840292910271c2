"""Stable segment ids across runs (Hungarian matching) and the old x new migration matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from segmentation.cluster import Segmenter

#: Rows of the current profile used to place the new clusters in the old feature space.
ALIGN_SAMPLE = 50_000


@dataclass(frozen=True)
class Alignment:
    """How the clusters of a new model map onto the segments of the previous one.

    Attributes
    ----------
    segment_ids
        Stable id of each new cluster label (matched: the old id; unmatched: a fresh id).
    matches
        One row per new cluster: ``label``, ``segment_id``, ``previous_segment_id`` (null
        when fresh) and ``distance`` (in the previous model's transformed space).
    max_segment_id
        Highest id issued in the lineage after this alignment.
    """

    segment_ids: np.ndarray
    matches: pl.DataFrame
    max_segment_id: int

    @property
    def n_fresh(self) -> int:
        """New clusters that got a fresh id."""
        return int(self.matches["previous_segment_id"].null_count())


def align_segment_ids(
    previous: Segmenter,
    current: Segmenter,
    X: pd.DataFrame,
    labels: np.ndarray | None = None,
    max_distance: float | None = None,
    sample_size: int = ALIGN_SAMPLE,
    random_state: int | None = 0,
) -> Alignment:
    """Match the new clusters to the previous run's segments so ``segment_id`` keeps its meaning.

    The current customers are transformed with the PREVIOUS model's preprocessing; each new
    cluster is represented by its members' mean there and matched to the previous
    centroids with :func:`scipy.optimize.linear_sum_assignment` on Euclidean distances.

    Parameters
    ----------
    previous
        Fitted segmenter of the last run (its ``segment_ids_`` are the ids to keep).
    current
        Newly fitted segmenter.
    X
        Current profile (pandas), holding both models' features.
    labels
        ``current``'s labels of the rows of ``X`` (default ``current.predict``).
    max_distance
        Matches farther apart than this get a fresh id instead (None: keep all matches).
    sample_size
        Rows of ``X`` used for the member means.
    random_state
        Seed of that sample.

    Returns
    -------
    Alignment
    """
    n = len(X)
    rng = np.random.default_rng(random_state)
    idx = np.sort(rng.choice(n, size=sample_size, replace=False)) if n > sample_size else None
    Xs = X if idx is None else X.iloc[idx]
    if labels is None:
        lab = current.predict(Xs)
    else:
        lab = np.asarray(labels) if idx is None else np.asarray(labels)[idx]
    Z_old = previous.transform(Xs)
    k_new = current.k_
    counts = np.bincount(lab, minlength=k_new).astype(np.float64)
    sums = np.zeros((k_new, Z_old.shape[1]))
    np.add.at(sums, lab, Z_old)
    present = counts > 0
    means = np.zeros_like(sums)
    means[present] = sums[present] / counts[present, None]

    cost = cdist(means, previous.centroids_)
    cost[~present] = 1e12  # an empty cluster matches nothing
    rows, cols = linear_sum_assignment(cost)
    old_ids = np.asarray(previous.segment_ids_, dtype=np.int64)
    next_id = int(max(previous.max_segment_id_, old_ids.max())) + 1
    ids = np.full(k_new, -1, dtype=np.int64)
    prev_of = np.full(k_new, -1, dtype=np.int64)
    dist = np.full(k_new, np.nan)
    for r, c in zip(rows, cols, strict=True):
        d = float(cost[r, c])
        dist[r] = d if present[r] else np.nan
        if present[r] and (max_distance is None or d <= max_distance):
            ids[r] = old_ids[c]
            prev_of[r] = old_ids[c]
    for r in range(k_new):
        if ids[r] < 0:
            ids[r] = next_id
            next_id += 1
    matches = pl.DataFrame(
        {
            "label": np.arange(k_new, dtype=np.int64),
            "segment_id": ids,
            "previous_segment_id": pl.Series(prev_of).replace(-1, None),
            "distance": pl.Series(dist).fill_nan(None),
        }
    )
    return Alignment(segment_ids=ids, matches=matches, max_segment_id=next_id - 1)


def migration_matrix(
    previous_ids: np.ndarray,
    previous_names: np.ndarray,
    new_ids: np.ndarray,
    new_names: np.ndarray,
) -> pl.DataFrame:
    """Old segment x new segment customer counts (long form, only non-empty cells).

    Parameters
    ----------
    previous_ids, previous_names
        The previous model's segment of each current customer.
    new_ids, new_names
        The new segment of the same customers, in the same order.

    Returns
    -------
    polars.DataFrame
        ``previous_segment_id``, ``previous_segment_name``, ``segment_id``, ``segment_name``,
        ``customers`` (Int64), ``share_of_previous`` (share of the old segment's customers),
        sorted by old then new id.
    """
    old, new = np.asarray(previous_ids, dtype=np.int64), np.asarray(new_ids, dtype=np.int64)
    # counted on the ids, named after: a name column per customer took ~1 GB at 10M customers
    counts = (
        pl.DataFrame({"previous_segment_id": old, "segment_id": new})
        .group_by("previous_segment_id", "segment_id")
        .agg(pl.len().cast(pl.Int64).alias("customers"))
        .join(_names(old, previous_names, "previous_segment"), on="previous_segment_id")
        .join(_names(new, new_names, "segment"), on="segment_id")
    )
    return migration_of(counts)


def migration_of(counts: pl.DataFrame) -> pl.DataFrame:
    """:func:`migration_matrix` from the customers counted by old and new segment (ids and
    names; a pair may come in several rows, the counts of parts of everyone: added up)."""
    return (
        counts.group_by(
            "previous_segment_id", "previous_segment_name", "segment_id", "segment_name"
        )
        .agg(pl.col("customers").sum().cast(pl.Int64))
        .with_columns(
            (pl.col("customers") / pl.col("customers").sum().over("previous_segment_id")).alias(
                "share_of_previous"
            )
        )
        .sort("previous_segment_id", "segment_id")
    )


def _names(ids: np.ndarray, names: np.ndarray, prefix: str) -> pl.DataFrame:
    """Each distinct id of ``ids`` with its name in ``names`` (an id has one name)."""
    distinct, first = np.unique(ids, return_index=True)
    return pl.DataFrame(
        {
            f"{prefix}_id": distinct,
            f"{prefix}_name": pl.Series(
                np.asarray(names, dtype=object)[first].tolist(), dtype=pl.String
            ),
        }
    )


def migration_table(migration: pl.DataFrame) -> pl.DataFrame:
    """The migration matrix as a wide table: one row per old segment, one column per new id."""
    return (
        migration.pivot(
            on="segment_id",
            index=["previous_segment_id", "previous_segment_name"],
            values="customers",
            sort_columns=True,
        )
        .fill_null(0)
        .sort("previous_segment_id")
    )


def stability(previous_ids: np.ndarray, new_ids: np.ndarray) -> float:
    """Share of customers whose segment id is unchanged."""
    a, b = np.asarray(previous_ids), np.asarray(new_ids)
    return float((a == b).mean()) if len(a) else float("nan")


def stability_of(migration: pl.DataFrame) -> float:
    """:func:`stability` from :func:`migration_of`'s counts."""
    total = int(migration.get_column("customers").sum())
    same = migration.filter(pl.col("previous_segment_id") == pl.col("segment_id"))
    return int(same.get_column("customers").sum()) / total if total else float("nan")
