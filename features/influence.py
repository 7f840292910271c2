"""Influence in the call graph: contacts, minutes, reach outside the region, PageRank, contagion."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import scipy.sparse as sp

from crm_engine.config import FeaturesConfig
from features.window import attach, observed, trailing_months

__all__ = ["add_influence", "influence_columns", "pagerank", "undirected_edges"]

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


def undirected_edges(calls: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """Undirected call graph of the trailing 12 complete months, one row per (a, b) and (b, a).

    Self-calls are dropped. Columns: ``customer_id`` (a), ``contact_id`` (b), ``minutes``,
    ``n_calls`` summed over both directions and all months.
    """
    start, _ = trailing_months(as_of, _MONTHS)
    recent = (
        observed(calls, "calls", as_of)
        .filter((pl.col("month") >= pl.lit(start)) & (pl.col("caller_id") != pl.col("callee_id")))
        .select("caller_id", "callee_id", "minutes", "n_calls")
    )
    forward = recent.select(
        pl.col("caller_id").alias("customer_id"),
        pl.col("callee_id").alias("contact_id"),
        pl.col("minutes").cast(pl.Float64),
        pl.col("n_calls").cast(pl.Int64),
    )
    backward = recent.select(
        pl.col("callee_id").alias("customer_id"),
        pl.col("caller_id").alias("contact_id"),
        pl.col("minutes").cast(pl.Float64),
        pl.col("n_calls").cast(pl.Int64),
    )
    return (
        pl.concat([forward, backward])
        .group_by("customer_id", "contact_id")
        # Rounded: a float sum's last bits depend on the order rows arrive in, which changes
        # with file layout; scores must not (see the rows-after-as_of end-to-end test).
        .agg(pl.col("minutes").sum().round(6), pl.col("n_calls").sum())
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
    nodes = (
        pl.concat(
            [edges.select("customer_id"), edges.select(pl.col("contact_id").alias("customer_id"))]
        )
        .unique()
        .sort("customer_id")
        .with_row_index("i")
    )
    n = nodes.height
    indexed = edges.join(nodes, on="customer_id").join(
        nodes.rename({"customer_id": "contact_id", "i": "j"}), on="contact_id"
    ).sort("i", "j")  # fixed summation order in the sparse products: same input, same bits
    weight = indexed["minutes"].fill_null(0.0).clip(lower_bound=0.0).to_numpy()
    matrix = sp.csr_matrix(
        (weight, (indexed["i"].to_numpy(), indexed["j"].to_numpy())), shape=(n, n)
    )
    out_weight = np.asarray(matrix.sum(axis=1)).ravel()
    dangling = out_weight <= 0
    inv = np.divide(1.0, out_weight, out=np.zeros(n), where=~dangling)
    transition_t = (sp.diags(inv) @ matrix).T.tocsr()
    rank = np.full(n, 1.0 / n)
    for _ in range(iterations):
        rank = (1.0 - damping) / n + damping * (transition_t @ rank + rank[dangling].sum() / n)
    rank /= rank.max()
    return nodes.select("customer_id").with_columns(pl.Series("influence_score", rank))


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
    edges = undirected_edges(calls, as_of)
    id_dtype = edges.collect_schema()["customer_id"]
    known = customers.filter(pl.col("signup_date") < pl.lit(as_of)).select(
        "customer_id", "region", "churn_date"
    )
    contagion_start = as_of - dt.timedelta(days=cfg.contagion_days)
    churned = pl.col("_contact_churn").is_between(
        pl.lit(contagion_start), pl.lit(as_of), closed="left"
    )
    outside = (
        pl.col("_contact_region").is_not_null()
        & pl.col("_own_region").is_not_null()
        & (pl.col("_contact_region") != pl.col("_own_region"))
    )
    contagion = f"churned_contacts_share_{cfg.contagion_days}d"
    per_customer = (
        edges.join(
            known.select(
                pl.col("customer_id").alias("contact_id"),
                pl.col("region").alias("_contact_region"),
                pl.col("churn_date").alias("_contact_churn"),
            ),
            on="contact_id",
            how="left",
        )
        .join(
            known.select("customer_id", pl.col("region").alias("_own_region")),
            on="customer_id",
            how="left",
        )
        .group_by("customer_id")
        .agg(
            pl.len().cast(pl.Int64).alias("n_contacts"),
            pl.col("minutes").sum().round(6).alias("call_minutes_12m"),
            outside.fill_null(False).cast(pl.Float64).mean().alias("outside_region_share"),
            churned.fill_null(False).cast(pl.Float64).mean().alias(contagion),
        )
    )
    scores = edges.select("customer_id", "contact_id", "minutes").map_batches(
        lambda df: pagerank(df, cfg.pagerank_iterations),
        schema={"customer_id": id_dtype, "influence_score": pl.Float64()},
    )
    fill: dict[str, pl.Expr | float | int | bool] = {
        "n_contacts": 0,
        "call_minutes_12m": 0.0,
        "outside_region_share": 0.0,
        "influence_score": 0.0,
        contagion: 0.0,
    }
    return attach(attach(profile, per_customer), scores, fill)
