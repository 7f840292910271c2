"""The call graph read once: per undirected pair and month, the minutes between the two.

A run asks for the call-graph columns at several cuts (the profile at ``as_of``, the churn
training cuts, the valuation holdout). :class:`CallGraph` reads ``calls`` once into per-pair
monthly minutes held as arrays, with every node's signup, region and churn date; the columns
of any cut (:meth:`CallGraph.scores`) then come from a mask over its months, a sum per pair
(``reduceat``) and a few ``bincount`` s per node, and PageRank from the same sparse code as
:func:`features.influence.pagerank`: no second read of ``calls``, no join per cut. See
:func:`features.influence.add_influence` for what the columns mean.
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


def _by_pair(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The order that puts the entries in ``(lo, hi)`` order, and where each distinct pair's
    entries begin in it."""
    key = lo.astype(np.int64)
    key *= n
    key += hi
    order = np.argsort(key)
    key = key[order]  # sorted
    new = np.empty(key.size, dtype=bool)
    new[:1] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    return order, np.flatnonzero(new)


def _month_number(series: pl.Series) -> np.ndarray:
    """:func:`_month_index` of each date (2 bytes an entry: up to the year 4700)."""
    return ((series.dt.year() - 1970) * 12 + series.dt.month() - 1).cast(pl.Int16).to_numpy()


def _month_index(day: dt.date) -> int:
    """Months from January 1970 to ``day``'s month."""
    return (day.year - 1970) * 12 + day.month - 1


@dataclass(frozen=True)
class CallGraph:
    """The calls of a run as arrays (see the module docstring).

    ``nodes`` are the sorted distinct ids of every pair; ``low`` / ``high`` the node index of
    each distinct pair's smaller and larger id; ``month`` and ``minutes`` one entry per (pair,
    month) with calls, a pair's entries together and the pairs in order (the pair's entries
    begin at ``starts``): the month (months since January 1970) and the minutes summed over
    both directions; held so, the entries need no pair index (~85M entries at 10M customers).
    ``signup``, ``churn`` (day numbers, missing: never) and ``region`` (a code, -1 for none)
    describe each node that is a customer.
    """

    nodes: pl.Series
    low: np.ndarray
    high: np.ndarray
    starts: np.ndarray
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
        order, starts = _by_pair(lo, hi, n)
        first = order[starts]
        low, high = lo[first], hi[first]
        del lo, hi, first
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
            low=low,
            high=high,
            starts=starts,
            month=_month_number(months.get_column("month"))[order],
            minutes=months.get_column("minutes").to_numpy()[order],
            signup=_days(known.get_column("signup_date")),
            churn=_days(known.get_column("churn_date")),
            region=known.get_column("region").to_numpy().astype(np.int32),
        )

    def scores(self, as_of: dt.date, cfg: FeaturesConfig) -> pl.DataFrame:
        """The call-graph columns at ``as_of`` (:func:`features.influence.influence_columns`),
        one row per customer with a call in its trailing 12 complete months, by id; the same
        values :func:`features.influence.influence_scores` computes from the tables."""
        from features.influence import _MONTHS, _rank, influence_columns

        first, last = (_month_index(d) for d in trailing_months(as_of, _MONTHS))
        window = (self.month >= first) & (self.month <= last)
        if self.starts.size:  # each pair's entries in a row: summed where they begin
            # rounded as undirected_edges rounds a pair's sum
            minutes = np.round(np.add.reduceat(np.where(window, self.minutes, 0.0), self.starts), 6)
            present = np.logical_or.reduceat(window, self.starts)
        else:
            minutes, present = np.zeros(0), np.zeros(0, dtype=bool)
        lo, hi, w = self.low[present], self.high[present], minutes[present]
        a, b, weight = np.concatenate([lo, hi]), np.concatenate([hi, lo]), np.concatenate([w, w])
        del window, minutes, present, lo, hi, w  # freed before PageRank's matrices

        n = self.nodes.len()
        cut = (as_of - _EPOCH).days
        known = self.signup < cut
        region = np.where(known, self.region, -1)
        gone = known & (self.churn >= cut - cfg.contagion_days) & (self.churn < cut)
        outside = (region[a] >= 0) & (region[b] >= 0) & (region[a] != region[b])
        degree = np.bincount(a, minlength=n)
        nodes = np.flatnonzero(degree > 0)
        k = degree[nodes].astype(np.float64)
        values = {
            "n_contacts": degree[nodes].astype(np.int64),
            "call_minutes_12m": np.round(np.bincount(a, weight, n)[nodes], 6),
            "outside_region_share": np.bincount(a, outside, n)[nodes] / k,
            f"churned_contacts_share_{cfg.contagion_days}d": np.bincount(a, gone[b], n)[nodes] / k,
        }
        del outside, degree, k, region, gone
        local = np.zeros(n, dtype=self.low.dtype)  # 4 bytes an edge end, as the pairs
        local[nodes] = np.arange(len(nodes))
        # rows b, columns a: each row's columns then come in order (below the row from the
        # pairs' second halves, above it from the first), so nothing is sorted; the edges'
        # own arrays are freed before PageRank's matrices are built
        rows, cols = local[b], local[a]
        del a, b, local
        positive = weight if weight.min(initial=0.0) >= 0 else np.clip(weight, 0.0, None)
        del weight
        values["influence_score"] = _rank(
            rows, cols, positive, len(nodes), cfg.pagerank_iterations, symmetric=True
        )
        del rows, cols, positive
        columns = influence_columns(cfg)
        return pl.DataFrame(
            {"customer_id": self.nodes.gather(nodes), **{c: values[c] for c in columns}}
        ).cast(dict(columns))  # type: ignore[arg-type]  # empty bincounts are integers
