"""Call-graph features on Spark: the distributed twin of :func:`features.influence.add_influence`.

Every step is a Spark join or group-by over the edge list, PageRank included (one job per
iteration, the rank ``localCheckpoint``-ed); only two counts come back to the driver. The
results match the local Polars implementation: minutes and shares bit for bit (the pair and
per-customer minutes are rounded to 6 decimals the same way), PageRank to float rounding.
The local module stays the reference: its constants and output columns are imported from it.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from crm_engine.config import FeaturesConfig
from features.influence import _DAMPING, _MONTHS, influence_columns
from features.window import trailing_months

__all__ = ["influence_frame", "pagerank_frame", "undirected_edges_frame"]

_SPARK_TYPES: dict[type[pl.DataType], T.DataType] = {
    pl.Int64: T.LongType(),
    pl.Float64: T.DoubleType(),
}


def _round6(col: Column) -> Column:
    """``col`` rounded to 6 decimals bit for bit as Polars' ``Expr.round(6)`` does it.

    Polars rounds a float by scaling, rounding half to even and scaling back;
    ``Math.rint`` is the half-to-even rounding of a double. Spark's own ``round`` and
    ``bround`` go through a decimal of the shortest repr and round some ties the other way.
    """
    return F.rint(col * F.lit(1e6)) / F.lit(1e6)


def _exact_sum(col: Column, scale: int) -> Column:
    """Sum of ``col`` over a group as a double: the same bits in any row order.

    ``F.sum`` of doubles adds partial sums in the order shuffle blocks arrive, which varies
    with the file layout and the cluster; the local ``pagerank`` guarantees that the same
    graph gives the same bits, and so must this (rows after ``as_of`` cannot change a
    score). Each term is rounded once to a fixed-point decimal (a function of the term
    alone) and decimals add exactly, so the sum cannot depend on the order; the result
    differs from a double sum in the last bits only. (Sorting each group's terms before
    adding them, the way to the same bits with doubles, gathers all of a node's in-edges
    into one array in one task: a hub's contacts at once. At 1M customers both take the
    same time.)

    ``scale`` decimals of 38 digits: 36 for ranks and their terms (a sum of ranks is at most
    1, and 1e-36 of a rank of 1e-9 is far below a double's last bit), 18 for minutes.
    """
    return F.sum(col.cast(T.DecimalType(38, scale))).cast("double")


def undirected_edges_frame(calls: DataFrame, as_of: dt.date) -> DataFrame:
    """Undirected call graph of the trailing 12 complete months, as in ``undirected_edges``.

    Parameters
    ----------
    calls
        ``caller_id``, ``callee_id``, ``month`` (date), ``minutes``, ``n_calls``.
    as_of
        First day not observed: only months that end on or before it count, each month
        truncated to its first day first (a mid-month date cannot bring a partial month in).

    Returns
    -------
    DataFrame
        ``customer_id``, ``contact_id``, ``minutes`` (double, summed over both directions
        and all months, rounded to 6 decimals), ``n_calls`` (long): one row per (a, b) and
        one per (b, a); self-calls dropped.
    """
    start, last = trailing_months(as_of, _MONTHS)  # last: features.window.last_complete_month
    month = F.trunc(F.col("month"), "month")
    recent = calls.where(
        (month >= F.lit(start))
        & (month <= F.lit(last))
        & (F.col("caller_id") != F.col("callee_id"))
    )
    pairs = recent.groupBy(
        F.least("caller_id", "callee_id").alias("_low"),
        F.greatest("caller_id", "callee_id").alias("_high"),
    ).agg(
        # Polars sums nulls as 0 (and an all-null group to 0); Spark would give null.
        _round6(F.coalesce(F.sum(F.col("minutes").cast("double")), F.lit(0.0))).alias("minutes"),
        F.coalesce(F.sum(F.col("n_calls").cast("long")), F.lit(0)).alias("n_calls"),
    )
    return pairs.select(
        F.explode(
            F.array(
                F.struct(F.col("_low").alias("a"), F.col("_high").alias("b")),
                F.struct(F.col("_high").alias("a"), F.col("_low").alias("b")),
            )
        ).alias("_e"),
        "minutes",
        "n_calls",
    ).select(
        F.col("_e.a").alias("customer_id"),
        F.col("_e.b").alias("contact_id"),
        "minutes",
        "n_calls",
    )


def pagerank_frame(
    spark: SparkSession,
    edges: DataFrame,
    iterations: int = 20,
    damping: float = _DAMPING,
    checkpoint_every: int = 1,
) -> DataFrame:
    """Weighted PageRank of an edge list, normalised so the top node scores 1 (``pagerank``).

    The same iteration as the scipy one: the nodes are every id seen as ``customer_id`` or
    ``contact_id``; a node's out-weights (``minutes``, null and negative as 0) are scaled by
    the inverse of their sum; nodes whose out-weights sum to 0 are dangling and spread
    their rank evenly; rank starts at ``1/n`` and each step is
    ``(1 - d)/n + d * (sum of rank * weight share over in-edges + dangling mass / n)``.
    A step is a Spark job: the edge list joined to the rank and grouped by the receiving
    node, with the dangling mass as a one-row aggregate cross-joined in. Duplicate
    (a, b) rows add up, as scipy's duplicate entries do. Sums add their terms exactly, as
    fixed-point decimals, so the same graph gives the same bits whatever the row order or
    partitioning.

    Parameters
    ----------
    spark
        The session (its ``spark.sql.shuffle.partitions`` partitions the edge list).
    edges
        ``customer_id``, ``contact_id``, ``minutes``.
    iterations
        Power iterations.
    damping
        Probability of following an edge rather than jumping anywhere.
    checkpoint_every
        ``localCheckpoint()`` the rank every this many iterations (and after the last):
        cuts the lineage and the plan, which otherwise doubles with every iteration (the
        rank is read by the edge join and by the dangling mass).

    Returns
    -------
    DataFrame
        ``customer_id``, ``influence_score`` (double, in (0, 1]), one row per node.
    """
    id_type = edges.schema["customer_id"].dataType
    weighted = edges.select(
        F.col("customer_id").alias("_src"),
        F.col("contact_id").cast(id_type).alias("_dst"),
        F.greatest(F.coalesce(F.col("minutes").cast("double"), F.lit(0.0)), F.lit(0.0)).alias("_w"),
    )
    out_weight = weighted.groupBy("_src").agg(_exact_sum(F.col("_w"), 18).alias("_out"))
    ids = (
        weighted.select(F.col("_src").alias("_node"))
        .union(weighted.select(F.col("_dst").alias("_node")))
        .distinct()
    )
    nodes = (
        ids.join(out_weight.withColumnRenamed("_src", "_node"), on="_node", how="left")
        .select(
            "_node",
            (F.coalesce(F.col("_out"), F.lit(0.0)) <= F.lit(0.0)).alias("_dangling"),
            # scipy: inv = 1/out, then diag(inv) @ matrix (inv * w, not w / out).
            F.when(F.col("_out") > F.lit(0.0), F.lit(1.0) / F.col("_out"))
            .otherwise(F.lit(0.0))
            .alias("_inv"),
        )
        .localCheckpoint()
    )
    counts = nodes.agg(
        F.count(F.lit(1)).alias("n"), F.sum(F.col("_dangling").cast("long")).alias("dangling")
    ).first()
    n, n_dangling = int(counts["n"]), int(counts["dangling"] or 0)
    if n == 0:
        schema = T.StructType(
            [
                T.StructField("customer_id", id_type),
                T.StructField("influence_score", T.DoubleType()),
            ]
        )
        return spark.createDataFrame([], schema)
    # Read by every step: cached (not checkpointed) hash-partitioned on the join key, so a
    # step shuffles the rank (a row per node) to it rather than the edges (a row per edge).
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions") or 200)
    transition = (
        weighted.join(nodes.select(F.col("_node").alias("_src"), "_inv"), on="_src")
        .select("_src", "_dst", (F.col("_inv") * F.col("_w")).alias("_p"))
        .where(F.col("_p") != F.lit(0.0))  # zero entries add nothing
        .repartition(partitions, "_src")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    # Every node receives a 0 term (which adds nothing to an exact sum), so one group-by
    # gives every node its next rank and dangling flag.
    zeros = nodes.select("_node", F.lit(0.0).alias("_term"), "_dangling")
    rank = nodes.select("_node", "_dangling", F.lit(1.0 / n).alias("_rank"))
    base = (1.0 - damping) / n
    for step in range(1, iterations + 1):
        terms = transition.join(rank.select(F.col("_node").alias("_src"), "_rank"), on="_src")
        received = (
            terms.select(
                F.col("_dst").alias("_node"),
                (F.col("_p") * F.col("_rank")).alias("_term"),
                F.lit(False).alias("_dangling"),
            )
            .unionByName(zeros)
            .groupBy("_node")
            .agg(_exact_sum(F.col("_term"), 36).alias("_in"), F.max("_dangling").alias("_dangling"))
        )
        if n_dangling:
            # One row: the rank of the dangling nodes (a few, as a rule), summed exactly.
            mass = (
                rank.where(F.col("_dangling"))
                .agg(_exact_sum(F.col("_rank"), 36).alias("_mass"))
                .select(F.coalesce(F.col("_mass"), F.lit(0.0)).alias("_mass"))
            )
            received = received.crossJoin(mass)
        else:
            received = received.withColumn("_mass", F.lit(0.0))
        rank = received.select(
            "_node",
            "_dangling",
            (
                F.lit(base) + F.lit(damping) * (F.col("_in") + F.col("_mass") / F.lit(float(n)))
            ).alias("_rank"),
        )
        if step % checkpoint_every == 0 or step == iterations:
            rank = rank.localCheckpoint()
    transition.unpersist()  # the last rank is checkpointed: nothing reads it any more
    top = rank.agg(F.max("_rank").alias("_top"))
    return rank.crossJoin(top).select(
        F.col("_node").alias("customer_id"),
        (F.col("_rank") / F.col("_top")).alias("influence_score"),
    )


def influence_frame(
    spark: SparkSession,
    calls: DataFrame,
    customers: DataFrame,
    as_of: dt.date,
    cfg: FeaturesConfig,
) -> DataFrame:
    """The call-graph columns of ``add_influence``, one row per node of the graph.

    Over the calls of the trailing 12 complete months, undirected: ``n_contacts``,
    ``call_minutes_12m``, ``outside_region_share`` (contacts who are not customers signed up
    before ``as_of`` count as not outside), ``influence_score`` (weighted PageRank, top node
    = 1) and ``churned_contacts_share_<contagion_days>d`` (contacts whose ``churn_date``
    lies in ``[as_of - contagion_days, as_of)``).

    Parameters
    ----------
    spark
        The session.
    calls
        The calls table with its contract columns (``caller_id``, ``callee_id``, ``month``,
        ``minutes``, ``n_calls``).
    customers
        The customers table (``customer_id``, ``region``, ``signup_date``, ``churn_date``
        are read), unique on ``customer_id``.
    as_of
        First day not observed.
    cfg
        ``contagion_days`` and ``pagerank_iterations`` are read.

    Returns
    -------
    DataFrame
        ``customer_id`` and the columns of ``features.influence.influence_columns(cfg)``
        (Int64 as long, Float64 as double), in that order. One row per id in the graph,
        non-customer contacts included; customers without calls have no row (the caller
        joins onto the profile and fills 0, as ``add_influence`` does).
    """
    edges = undirected_edges_frame(calls, as_of).localCheckpoint()
    known = customers.where(F.col("signup_date") < F.lit(as_of)).select(
        "customer_id", "region", "churn_date"
    )
    contagion_start = as_of - dt.timedelta(days=cfg.contagion_days)
    contagion = f"churned_contacts_share_{cfg.contagion_days}d"
    enriched = edges.join(
        known.select(
            F.col("customer_id").alias("contact_id"),
            F.col("region").alias("_contact_region"),
            F.col("churn_date").alias("_contact_churn"),
        ),
        on="contact_id",
        how="left",
    ).join(
        known.select("customer_id", F.col("region").alias("_own_region")),
        on="customer_id",
        how="left",
    )
    # A null on either side (no region, no churn date, not a known customer) is False.
    outside = F.coalesce(F.col("_contact_region") != F.col("_own_region"), F.lit(False))
    churned = F.coalesce(
        (F.col("_contact_churn") >= F.lit(contagion_start))
        & (F.col("_contact_churn") < F.lit(as_of)),
        F.lit(False),
    )
    sums = enriched.groupBy("customer_id").agg(
        F.count(F.lit(1)).alias("n_contacts"),
        # Sums of 6-decimal numbers, rounded: the same bits in any order, as in Polars.
        _round6(F.sum("minutes")).alias("call_minutes_12m"),
        F.avg(outside.cast("double")).alias("outside_region_share"),
        F.avg(churned.cast("double")).alias(contagion),
    )
    ranks = pagerank_frame(
        spark, edges.select("customer_id", "contact_id", "minutes"), cfg.pagerank_iterations
    )
    joined = sums.join(ranks, on="customer_id", how="left")
    return joined.select(
        "customer_id",
        *(
            F.col(name).cast(_SPARK_TYPES[type(dtype)]).alias(name)
            for name, dtype in influence_columns(cfg).items()
        ),
    )
