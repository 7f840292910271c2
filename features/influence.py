"""Influence in the call graph: contacts, minutes, reach outside the region, PageRank, contagion."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import scipy.sparse as sp

from crm_engine.config import FeaturesConfig
from features.window import attach, observed, trailing_months

__all__ = [
    "add_influence",
    "attach_influence",
    "influence_columns",
    "influence_scores",
    "pagerank",
    "undirected_edges",
]

_MONTHS = 12
_DAMPING = 0.85


def influence_columns(cfg: FeaturesConfig) -> dict[str, pl.DataType]:
    """Declared output of :func:`add_influence`."""
    return {
        "n_contacts": pl.Int64(),
        "call_minutes_12m": pl.Float64(),
        "outside_region_share": pl.Float64(),
        "influence_score": pl.Float64(),
        f"churned_contacts_share_{cfg.contagion_days}d": pl.Float64(),
    }


def undirected_edges(
    calls: pl.LazyFrame, as_of: dt.date, months: int | None = _MONTHS
) -> pl.LazyFrame:
    """Undirected call graph of the trailing ``months`` complete months (the profile's 12;
    None: every month before ``as_of``), one row per (a, b) and (b, a).

    Self-calls are dropped. Columns: ``customer_id`` (a), ``contact_id`` (b), ``minutes``,
    ``n_calls`` summed over both directions and all months, ``first_month`` of a call
    between the two.
    """
    recent = observed(calls, "calls", as_of).filter(pl.col("caller_id") != pl.col("callee_id"))
    if months is not None:
        start, _ = trailing_months(as_of, months)
        recent = recent.filter(pl.col("month") >= pl.lit(start))
    recent = recent.select("caller_id", "callee_id", "month", "minutes", "n_calls")
    # Each unordered pair once (smaller id first), summed over both directions and all
    # months, then written out in both directions: half the rows to group of the
    # direction-by-direction way.
    pairs = recent.group_by(
        pl.min_horizontal("caller_id", "callee_id").alias("_low"),
        pl.max_horizontal("caller_id", "callee_id").alias("_high"),
    ).agg(
        # Rounded: a float sum's last bits depend on the order rows arrive in, which changes
        # with file layout; scores must not (see the rows-after-as_of end-to-end test).
        pl.col("minutes").cast(pl.Float64).sum().round(6),
        pl.col("n_calls").cast(pl.Int64).sum(),
        pl.col("month").min().alias("first_month"),
    )
    return pl.concat(
        [
            pairs.select(
                pl.col(a).alias("customer_id"),
                pl.col(b).alias("contact_id"),
                "minutes",
                "n_calls",
                "first_month",
            )
            for a, b in (("_low", "_high"), ("_high", "_low"))
        ]
    )


def pagerank(edges: pl.DataFrame, iterations: int = 20, damping: float = _DAMPING) -> pl.DataFrame:
    """Weighted PageRank of an edge list, normalised so that the top node scores 1.

    This is the one eager step of the features package: PageRank is iterative, so the edge
    list (a few columns per customer pair) is handed to ``scipy.sparse`` from inside the
    lazy plan (``LazyFrame.map_batches``) instead of unrolling ``iterations`` joins.

    Parameters
    ----------
    edges
        ``customer_id``, ``contact_id``, ``minutes`` (the edge weight; negative counts as 0).
        Nodes whose edges all weigh 0 spread their rank evenly (dangling nodes).
    iterations
        Power iterations.
    damping
        Probability of following an edge rather than jumping anywhere.

    Returns
    -------
    pl.DataFrame
        ``customer_id``, ``influence_score`` in (0, 1], one row per node, sorted by id.
    """
    id_dtype = edges.schema["customer_id"]
    empty = pl.DataFrame(schema={"customer_id": id_dtype, "influence_score": pl.Float64()})
    if edges.height == 0:
        return empty
    ids, contacts = edges.get_column("customer_id"), edges.get_column("contact_id")
    nodes = pl.concat([ids, contacts.cast(id_dtype)]).unique().sort()
    i, j = _node_index(nodes.to_numpy(), ids.to_numpy(), contacts.to_numpy())
    weight = edges.get_column("minutes").fill_null(0.0).clip(lower_bound=0.0).to_numpy()
    rank = _rank(i, j, weight, nodes.len(), iterations, damping)
    return pl.DataFrame({"customer_id": nodes, "influence_score": rank})


_SCALE_CHUNK = 1 << 22
"""Matrix entries scaled at a time by :func:`_rank` (bounds its index temporaries)."""


def _rank(
    i: np.ndarray,
    j: np.ndarray,
    weight: np.ndarray,
    n: int,
    iterations: int,
    damping: float = _DAMPING,
    *,
    symmetric: bool = False,
) -> np.ndarray:
    """PageRank of the ``n`` nodes of the weighted edges ``i -> j``, top node 1.

    ``symmetric``: every edge is there both ways with the same weight (an undirected graph);
    the matrix is then its own transpose, which is not built. Edges given by row and then by
    column (:meth:`features.callgraph.CallGraph.scores` gives them so) need no sorting either.
    """
    if n == 0:
        return np.empty(0)
    matrix = sp.csr_matrix((weight, (i, j)), shape=(n, n))
    # Canonical layout (duplicates summed, column indices sorted): the sparse products then
    # add in the same order whatever order the edges came in, so the same graph gives the
    # same bits.
    matrix.sum_duplicates()
    matrix.sort_indices()
    out_weight = np.asarray(matrix.sum(axis=1)).ravel()
    dangling = out_weight <= 0
    inv = np.divide(1.0, out_weight, out=np.zeros(n), where=~dangling)
    # The transpose of diag(inv) @ matrix, scaled in place after transposing (the same
    # products, so the same bits): one copy of the matrix alive at a time beside it, not two.
    # A symmetric matrix in canonical layout is its transpose's, entry for entry.
    transition_t = matrix if symmetric else matrix.T.tocsr()
    del matrix
    transition_t.sort_indices()
    data, columns = transition_t.data, transition_t.indices
    for start in range(0, data.size, _SCALE_CHUNK):
        stop = start + _SCALE_CHUNK
        data[start:stop] *= inv[columns[start:stop]]
    rank = np.full(n, 1.0 / n)
    for _ in range(iterations):
        rank = (1.0 - damping) / n + damping * (transition_t @ rank + rank[dangling].sum() / n)
    return rank / rank.max()


def _node_index(
    keys: np.ndarray, *ids: np.ndarray, dtype: type[np.integer] = np.int64
) -> list[np.ndarray]:
    """Positions of ``ids`` in the sorted distinct ``keys``, as ``dtype``.

    Customer ids are usually dense non-negative integers: a lookup table then costs one
    array read per edge, where a binary search misses the cache at every step.
    """
    dense = (
        keys.dtype.kind in "iu"  # string ids (and no ids at all) take the binary search
        and len(keys) > 0
        and int(keys[0]) >= 0
        and int(keys[-1]) < 4 * len(keys) + 1_000_000
    )
    if dense:
        table = np.empty(int(keys[-1]) + 1, dtype=dtype)
        table[keys] = np.arange(len(keys), dtype=dtype)
        return [table[a] for a in ids]
    return [np.searchsorted(keys, a).astype(dtype, copy=False) for a in ids]


def influence_scores(
    calls: pl.LazyFrame, customers: pl.LazyFrame, as_of: dt.date, cfg: FeaturesConfig
) -> pl.LazyFrame:
    """The call-graph columns of every node of the graph at ``as_of`` (see
    :func:`add_influence`): ``customer_id`` and :func:`influence_columns`, by id.

    It needs the whole graph (every call and every customer's region and churn date): a plan
    that reads ``calls`` into a :class:`features.callgraph.CallGraph` when collected. A run
    that asks for several cuts reads one graph and calls its ``scores`` per cut.
    """
    from features.callgraph import CallGraph

    id_dtype = customers.collect_schema()["customer_id"]
    schema = pl.Schema({"customer_id": id_dtype, **influence_columns(cfg)})
    return pl.defer(
        lambda: CallGraph.read(calls, customers, as_of).scores(as_of, cfg), schema=schema
    )


def attach_influence(
    profile: pl.LazyFrame, scores: pl.LazyFrame, cfg: FeaturesConfig
) -> pl.LazyFrame:
    """``profile`` with the call-graph columns of ``scores`` (:func:`influence_scores`, or
    the Spark backend's twin); 0 for customers without calls."""
    columns = influence_columns(cfg)
    fill: dict[str, pl.Expr | float | int | bool] = {
        name: 0 if dtype.is_integer() else 0.0 for name, dtype in columns.items()
    }
    return attach(profile, scores.select("customer_id", *columns), fill)


def add_influence(
    profile: pl.LazyFrame,
    calls: pl.LazyFrame,
    customers: pl.LazyFrame,
    as_of: dt.date,
    cfg: FeaturesConfig,
) -> pl.LazyFrame:
    """Add the call-graph columns to ``profile``.

    Over the calls of the trailing 12 complete months, treated as undirected:

    - ``n_contacts``: distinct people called or calling; ``call_minutes_12m``: their minutes;
    - ``outside_region_share``: share of contacts whose known region differs from the
      customer's own (contacts who are not customers at ``as_of`` count as not outside);
    - ``influence_score``: weighted PageRank (minutes) normalised to 0-1 (top node = 1);
    - ``churned_contacts_share_<d>d``: share of contacts whose ``churn_date`` lies in
      ``[as_of - contagion_days, as_of)``.

    Only customers who signed up before ``as_of`` lend their region or churn date. All
    columns are 0 for customers without calls.
    """
    return attach_influence(profile, influence_scores(calls, customers, as_of, cfg), cfg)
