"""The call graph read once: per undirected pair and month, the minutes between the two.

A run asks for the call-graph columns at several cuts (the profile at ``as_of``, the churn
training cuts, the valuation holdout). :class:`CallGraph` reads ``calls`` once into per-pair
monthly minutes held as arrays, with every node's signup, region and churn date; the columns
of any cut (:meth:`CallGraph.scores`) then come from a mask over its months and a few
``bincount`` s, and PageRank from the same sparse code as :func:`features.influence.pagerank`:
no second read of ``calls``, no join per cut. See :func:`features.influence.add_influence` for
what the columns mean.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from crm_engine.config import FeaturesConfig
from features.window import observed, trailing_months

__all__ = ["CallGraph", "pair_bucket_expr"]

_EPOCH = dt.date(1970, 1, 1)
_NEVER = np.iinfo(np.int32).max
"""Day number standing for a missing date (a signup or churn date that is not there)."""


def _days(series: pl.Series) -> np.ndarray:
    return series.cast(pl.Int32).fill_null(_NEVER).to_numpy().astype(np.int32)


def pair_bucket_expr(buckets: int) -> pl.Expr:
    """The part (``0 .. buckets - 1``) of a ``calls`` row such that every call between the same
    two people meets in one part: a hash of the smaller of the two ids."""
    if buckets <= 0:
        raise ValueError(f"buckets must be positive, got {buckets}")
    return (pl.min_horizontal("caller_id", "callee_id").hash(seed=0) % buckets).cast(pl.UInt32)


def _pair_months(calls: pl.LazyFrame, id_dtype: pl.DataType, as_of: dt.date) -> pl.DataFrame:
    """Minutes per undirected pair (``_low``, ``_high`` ids) and month of the calls before
    ``as_of``, self-calls left out."""
    low = pl.min_horizontal("caller_id", "callee_id").cast(id_dtype).alias("_low")
    high = pl.max_horizontal("caller_id", "callee_id").cast(id_dtype).alias("_high")
    return (
        observed(calls, "calls", as_of)
        .filter(pl.col("caller_id") != pl.col("callee_id"))
        .group_by(low, high, "month")
        .agg(pl.col("minutes").cast(pl.Float64).sum())
        .collect(engine="streaming")
    )


def _pairs(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each entry's pair (the rank of ``(lo, hi)`` among the distinct pairs, in ``lo``, ``hi``
    order; ``lo``'s dtype) and one entry of each pair, in pair order.

    What ``np.unique(lo * n + hi, return_inverse=True)`` gives, with a third of its transient
    memory: at 10M customers (~85M entries) reading the graph peaked 8 GB above the run
    through ``np.unique``'s copies.
    """
    key = lo.astype(np.int64)
    key *= n
    key += hi
    order = np.argsort(key)
    key = key[order]  # sorted
    new = np.empty(key.size, dtype=bool)
    new[:1] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    del key
    rank = np.cumsum(new, dtype=lo.dtype)
    rank -= 1
    pair = np.empty_like(rank)
    pair[order] = rank
    return pair, order[new]


@dataclass(frozen=True)
class CallGraph:
    """The calls of a run as arrays (see the module docstring).

    ``nodes`` are the sorted distinct ids of every pair; ``low`` / ``high`` the node index of
    each distinct pair's smaller and larger id; ``pair``, ``month`` and ``minutes`` one entry
    per (pair, month) with calls: the pair's index, the month's first day as a day number and
    the minutes summed over both directions. ``signup``, ``churn`` (day numbers, missing:
    never) and ``region`` (a code, -1 for none) describe each node that is a customer.
    """

    nodes: pl.Series
    low: np.ndarray
    high: np.ndarray
    pair: np.ndarray
    month: np.ndarray
    minutes: np.ndarray
    signup: np.ndarray
    churn: np.ndarray
    region: np.ndarray

    @classmethod
    def read(
        cls,
        calls: pl.LazyFrame | Sequence[pl.LazyFrame],
        customers: pl.LazyFrame,
        as_of: dt.date,
    ) -> CallGraph:
        """Read the calls a profile at ``as_of`` (or any earlier cut) may see, once.

        ``calls`` is the table, or its parts split by :func:`pair_bucket_expr` (every call of
        a pair in one part): each part is summed on its own, so the sums' working memory is
        that of a part. Self-calls are left out, as the profile leaves them out.
        """
        id_dtype = customers.collect_schema()["customer_id"]
        parts = [calls] if isinstance(calls, pl.LazyFrame) else list(calls)
        months = pl.concat([_pair_months(p, id_dtype, as_of) for p in parts], rechunk=False)
        low_ids, high_ids = months.get_column("_low"), months.get_column("_high")
        nodes = pl.concat([low_ids.unique(), high_ids.unique()]).unique().sort()
        n = max(nodes.len(), 1)
        index = np.int32 if max(n, months.height) < 2**31 else np.int64  # 4 bytes an entry
        from features.influence import _node_index

        lo, hi = _node_index(nodes.to_numpy(), low_ids.to_numpy(), high_ids.to_numpy(), dtype=index)
        del low_ids, high_ids
        months = months.drop("_low", "_high")  # the ids are node indices now
        pair, first = _pairs(lo, hi, n)
        known = (
            pl.DataFrame({"customer_id": nodes})
            .join(
                customers.select("customer_id", "signup_date", "region", "churn_date").collect(),
                on="customer_id",
                how="left",
                maintain_order="left",
            )
            .with_columns(
                pl.col("region").cast(pl.String).rank("dense").cast(pl.Int32).fill_null(0) - 1
            )
        )
        return cls(
            nodes=nodes,
            low=lo[first],
            high=hi[first],
            pair=pair,
            month=_days(months.get_column("month").dt.truncate("1mo")),
            minutes=months.get_column("minutes").to_numpy(),
            signup=_days(known.get_column("signup_date")),
            churn=_days(known.get_column("churn_date")),
            region=known.get_column("region").to_numpy().astype(np.int32),
        )

    def scores(self, as_of: dt.date, cfg: FeaturesConfig) -> pl.DataFrame:
        """The call-graph columns at ``as_of`` (:func:`features.influence.influence_columns`),
        one row per customer with a call in its trailing 12 complete months, by id; the same
        values :func:`features.influence.influence_scores` computes from the tables."""
        from features.influence import _MONTHS, _rank, influence_columns

        first, last = trailing_months(as_of, _MONTHS)
        window = (self.month >= (first - _EPOCH).days) & (self.month <= (last - _EPOCH).days)
        in_window = self.pair[window]
        n_pairs = len(self.low)
        # rounded as undirected_edges rounds a pair's sum
        minutes = np.round(np.bincount(in_window, self.minutes[window], n_pairs), 6)
        present = np.bincount(in_window, minlength=n_pairs) > 0
        lo, hi, w = self.low[present], self.high[present], minutes[present]
        a, b, weight = np.concatenate([lo, hi]), np.concatenate([hi, lo]), np.concatenate([w, w])
        del window, in_window, minutes, present, lo, hi, w  # freed before PageRank's matrices

        n = self.nodes.len()
        cut = (as_of - _EPOCH).days
        known = self.signup < cut
        region = np.where(known, self.region, -1)
        gone = known & (self.churn >= cut - cfg.contagion_days) & (self.churn < cut)
        outside = (region[a] >= 0) & (region[b] >= 0) & (region[a] != region[b])
        degree = np.bincount(a, minlength=n)
        nodes = np.flatnonzero(degree > 0)
        k = degree[nodes].astype(np.float64)
        local = np.zeros(n, dtype=self.low.dtype)  # 4 bytes an edge end, as the pairs
        local[nodes] = np.arange(len(nodes))
        positive = weight if weight.min(initial=0.0) >= 0 else np.clip(weight, 0.0, None)
        rank = _rank(local[a], local[b], positive, len(nodes), cfg.pagerank_iterations)
        del positive
        columns = influence_columns(cfg)
        values = {
            "n_contacts": degree[nodes].astype(np.int64),
            "call_minutes_12m": np.round(np.bincount(a, weight, n)[nodes], 6),
            "outside_region_share": np.bincount(a, outside, n)[nodes] / k,
            "influence_score": rank,
            f"churned_contacts_share_{cfg.contagion_days}d": np.bincount(a, gone[b], n)[nodes] / k,
        }
        return pl.DataFrame(
            {"customer_id": self.nodes.gather(nodes), **{c: values[c] for c in columns}}
        ).cast(dict(columns))  # type: ignore[arg-type]  # empty bincounts are integers
