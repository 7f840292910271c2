"""Call-graph features on Spark: the distributed twin of :class:`features.callgraph.CallGraph`.

``calls`` is read once per run into minutes per undirected pair and month
(:func:`pair_months_frame`); the columns of any number of cuts then come from it in one go
(:func:`influence_frame`): each cut's edges and sums per customer are Spark joins and
group-bys keyed by the cut (``_cut``), and each cut's PageRank is the local scipy code in one
task of its own (:func:`pagerank_frame`), the cuts in parallel. Nothing per customer comes
back to the driver: :class:`SparkCallGraph` has the executors write the columns as Parquet.
The results match the local implementation: counts and minutes (rounded to 6 decimals)
exactly, shares and PageRank to float rounding. The local module stays the reference: its
constants, output columns and PageRank are imported from it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from crm_engine.config import FeaturesConfig
from features.influence import _DAMPING, _MONTHS, influence_columns
from features.sample import bucket_expr
from features.window import trailing_months
from pipelines.spark.profile import BUCKET, CUT, bucket_of, cut_files

if TYPE_CHECKING:
    from churn.network import ContactSums
    from crm_engine.parts import Parts

__all__ = [
    "CUT",
    "SparkCallGraph",
    "SparkContacts",
    "cut_edges_frame",
    "influence_frame",
    "pagerank_frame",
    "pair_months_frame",
]

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


def pair_months_frame(calls: DataFrame) -> DataFrame:
    """Minutes and calls per undirected pair and month: what every cut's edges are summed from.

    Parameters
    ----------
    calls
        ``caller_id``, ``callee_id``, ``month`` (date), ``minutes``, ``n_calls``.

    Returns
    -------
    DataFrame
        ``_low``, ``_high`` (the pair's smaller and larger id), ``_month`` (the month's first
        day: a mid-month date counts in its month), ``minutes`` (double) and ``n_calls``
        (long), null where every call of the pair that month had none; self-calls dropped.
    """
    return (
        calls.where(F.col("caller_id") != F.col("callee_id"))
        .groupBy(
            F.least("caller_id", "callee_id").alias("_low"),
            F.greatest("caller_id", "callee_id").alias("_high"),
            F.trunc(F.col("month"), "month").alias("_month"),
        )
        .agg(
            F.sum(F.col("minutes").cast("double")).alias("minutes"),
            F.sum(F.col("n_calls").cast("long")).alias("n_calls"),
        )
    )


def cut_edges_frame(spark: SparkSession, pairs: DataFrame, cuts: Sequence[dt.date]) -> DataFrame:
    """The undirected call graph of each cut's trailing 12 complete months, as
    ``features.influence.undirected_edges`` gives it for one.

    Parameters
    ----------
    spark
        The session.
    pairs
        :func:`pair_months_frame` of the calls.
    cuts
        The cuts (first days not observed): a month counts for a cut when it ends on or
        before it.

    Returns
    -------
    DataFrame
        ``_cut``, ``customer_id``, ``contact_id``, ``minutes`` (double, summed over both
        directions and the months, rounded to 6 decimals), ``n_calls`` (long): per cut one
        row per (a, b) and one per (b, a).
    """
    # literals, not createDataFrame: a DataFrame of local rows is read through Python
    # workers of their own (an RDD's), a second pool of them beside the SQL jobs' for the run
    rows = [
        F.struct(F.lit(cut).alias(CUT), F.lit(start).alias("_start"), F.lit(last).alias("_last"))
        for cut in cuts
        for start, last in [trailing_months(cut, _MONTHS)]
    ]
    windows = spark.range(1).select(F.inline(F.array(*rows)))
    month = F.col("_month")
    recent = pairs.join(
        F.broadcast(windows), (month >= F.col("_start")) & (month <= F.col("_last"))
    )
    summed = recent.groupBy(CUT, "_low", "_high").agg(
        # Polars sums nulls as 0 (and an all-null group to 0); Spark would give null.
        _round6(F.coalesce(F.sum("minutes"), F.lit(0.0))).alias("minutes"),
        F.coalesce(F.sum("n_calls"), F.lit(0)).cast("long").alias("n_calls"),
    )
    both_ways = F.array(
        F.struct(F.col("_low").alias("a"), F.col("_high").alias("b")),
        F.struct(F.col("_high").alias("a"), F.col("_low").alias("b")),
    )
    return summed.select(CUT, F.explode(both_ways).alias("_e"), "minutes", "n_calls").select(
        CUT,
        F.col("_e.a").alias("customer_id"),
        F.col("_e.b").alias("contact_id"),
        "minutes",
        "n_calls",
    )


def _rank_task(
    id_type: pa.DataType, iterations: int, damping: float, buckets: int | None
) -> Callable[[pa.Table], pa.Table]:
    """The ``applyInArrow`` function ranking one cut's graph with the local
    :func:`features.influence.pagerank`, and with ``buckets`` each node's bucket
    (:func:`features.sample.bucket_expr`, the profile's) in ``_bucket`` (a closure: PySpark
    reads the eval type off the function's type hints)."""
    fields = [(CUT, pa.date32()), ("customer_id", id_type), ("influence_score", pa.float64())]
    if buckets is not None:
        fields.append((BUCKET, pa.int64()))

    def run(edges: pa.Table) -> pa.Table:
        from features.influence import pagerank

        frame = pl.from_arrow(edges)
        assert isinstance(frame, pl.DataFrame)
        cut = frame.get_column(CUT)[0]
        ranks = pagerank(frame.drop(CUT), iterations, damping)
        out = ranks.select(pl.lit(cut, pl.Date).alias(CUT), "customer_id", "influence_score")
        if buckets is not None:
            out = out.with_columns(bucket_expr(buckets).cast(pl.Int64).alias(BUCKET))
        return out.to_arrow().cast(pa.schema(fields))

    return run


def pagerank_frame(
    edges: DataFrame,
    iterations: int = 20,
    damping: float = _DAMPING,
    buckets: int | None = None,
) -> DataFrame:
    """Weighted PageRank of each cut's edge list, normalised so that the cut's top node
    scores 1: :func:`features.influence.pagerank`, the local code, in one task per cut.

    A cut's graph is ranked whole in one Python task (``groupBy(cut).applyInArrow``), so the
    cuts run in parallel and each gives the local result bit for bit (the same graph in any
    row order gives the same bits). A task holds its cut's edges about three times over
    (Arrow, the index arrays, the sparse matrix): by that count about 100 bytes an edge,
    0.3 GB for the 2.7M edges of the generated 1M-customer operator (not measured). A
    PageRank of Spark joins (a job per step, the rank shuffled to the edges) took 95 s for
    one cut of that operator on ``local[2]`` and overran 14 GB with seven cuts; the columns
    of those seven cuts, PageRank in tasks, took 68 s.

    Parameters
    ----------
    edges
        ``_cut``, ``customer_id``, ``contact_id``, ``minutes``.
    iterations
        Power iterations.
    damping
        Probability of following an edge rather than jumping anywhere.
    buckets
        When given, each node's bucket in ``_bucket`` too.

    Returns
    -------
    DataFrame
        ``_cut``, ``customer_id``, ``influence_score`` (double, in (0, 1]): per cut, one row
        per node.
    """
    id_field = edges.schema["customer_id"].dataType
    id_type = pa.string() if isinstance(id_field, T.StringType) else pa.int64()
    ddl = f"{CUT} date, customer_id {id_field.simpleString()}, influence_score double"
    if buckets is not None:
        ddl += f", {BUCKET} long"
    task = _rank_task(id_type, iterations, damping, buckets)
    return (
        edges.select(CUT, "customer_id", "contact_id", "minutes")
        .groupBy(CUT)
        .applyInArrow(task, ddl)
    )


def influence_frame(
    spark: SparkSession,
    pairs: DataFrame,
    customers: DataFrame,
    cuts: Sequence[dt.date],
    cfg: FeaturesConfig,
    buckets: int | None = None,
) -> DataFrame:
    """The call-graph columns of ``add_influence`` at each cut, one row per node of the cut's
    graph (with ``buckets``, each node's bucket in ``_bucket`` after them, from its PageRank
    task: no pass of its own).

    Over the calls of the trailing 12 complete months, undirected: ``n_contacts``,
    ``call_minutes_12m``, ``outside_region_share`` (contacts who are not customers signed up
    before the cut count as not outside), ``influence_score`` (weighted PageRank, top node
    = 1) and ``churned_contacts_share_<contagion_days>d`` (contacts whose ``churn_date``
    lies in ``[cut - contagion_days, cut)``).

    Parameters
    ----------
    spark
        The session.
    pairs
        :func:`pair_months_frame` of the calls table.
    customers
        The customers table (``customer_id``, ``region``, ``signup_date``, ``churn_date``
        are read), unique on ``customer_id``.
    cuts
        The cuts (first days not observed), computed together.
    cfg
        ``contagion_days`` and ``pagerank_iterations`` are read.

    Returns
    -------
    DataFrame
        ``_cut``, ``customer_id`` and the columns of ``features.influence.
        influence_columns(cfg)`` (Int64 as long, Float64 as double), in that order. Per cut
        one row per id in the graph, non-customer contacts included; customers without
        calls have no row (the caller joins onto the profile and fills 0, as
        ``add_influence`` does).
    """
    edges = cut_edges_frame(spark, pairs, cuts).localCheckpoint()
    people = customers.select("customer_id", "region", "signup_date", "churn_date")
    enriched = edges.join(
        people.select(
            F.col("customer_id").alias("contact_id"),
            F.col("region").alias("_contact_region"),
            F.col("signup_date").alias("_contact_signup"),
            F.col("churn_date").alias("_contact_churn"),
        ),
        on="contact_id",
        how="left",
    ).join(
        people.select(
            "customer_id",
            F.col("region").alias("_own_region"),
            F.col("signup_date").alias("_own_signup"),
        ),
        on="customer_id",
        how="left",
    )
    cut = F.col(CUT)
    contact_known = F.col("_contact_signup") < cut
    # A null on either side (no region, no churn date, not a customer known at the cut) is
    # False.
    outside = F.coalesce(
        contact_known
        & (F.col("_own_signup") < cut)
        & (F.col("_contact_region") != F.col("_own_region")),
        F.lit(False),
    )
    churned = F.coalesce(
        contact_known
        & (F.col("_contact_churn") >= F.date_sub(cut, cfg.contagion_days))
        & (F.col("_contact_churn") < cut),
        F.lit(False),
    )
    contagion = f"churned_contacts_share_{cfg.contagion_days}d"
    sums = enriched.groupBy(CUT, "customer_id").agg(
        F.count(F.lit(1)).alias("n_contacts"),
        # Sums of 6-decimal numbers, rounded: the same bits in any order, as in Polars.
        _round6(F.sum("minutes")).alias("call_minutes_12m"),
        F.avg(outside.cast("double")).alias("outside_region_share"),
        F.avg(churned.cast("double")).alias(contagion),
    )
    ranks = pagerank_frame(edges, cfg.pagerank_iterations, buckets=buckets)
    joined = sums.join(ranks, on=[CUT, "customer_id"], how="left")
    return joined.select(
        CUT,
        "customer_id",
        *(
            F.col(name).cast(_SPARK_TYPES[type(dtype)]).alias(name)
            for name, dtype in influence_columns(cfg).items()
        ),
        *([BUCKET] if buckets is not None else []),
    )


class SparkCallGraph:
    """The call graph of one run on Spark: ``calls`` read once into :func:`pair_months_frame`
    (kept on the executors), the columns of each cut computed once and written by the
    executors as Parquet under ``directory``, the cuts expected together
    (:meth:`expect`) in one :func:`influence_frame`.

    Parameters
    ----------
    spark
        The session.
    calls, customers
        The run's calls and customers tables, cast to the contract.
    directory
        Where the cuts' columns are written (the run's scratch: on a cluster, a path the
        executors and the driver share).
    """

    def __init__(
        self,
        spark: SparkSession,
        calls: DataFrame,
        customers: DataFrame,
        directory: Path,
        buckets: int | None = None,
    ) -> None:
        self._spark = spark
        self._buckets = buckets
        self._calls = calls
        self._customers = customers
        self._directory = directory
        self._pairs: DataFrame | None = None
        self._written: dict[tuple[dt.date, int, int], Path | None] = {}
        self._batches = 0

    @property
    def calls(self) -> DataFrame:
        """The run's calls, cast to the contract, as the executors read them."""
        return self._calls

    def expect(self, cuts: Sequence[dt.date], cfg: FeaturesConfig) -> None:
        """Compute the columns of every cut of ``cuts`` not computed yet, together."""
        todo = sorted({c for c in cuts if _key(c, cfg) not in self._written})
        if not todo:
            return
        if self._pairs is None:
            self._pairs = pair_months_frame(self._calls).localCheckpoint()
        path = self._directory / f"batch-{self._batches:03d}"
        self._batches += 1
        frame = influence_frame(self._spark, self._pairs, self._customers, todo, cfg, self._buckets)
        # by the profile's buckets: a file of the profile reads its own bucket's rows
        by = (CUT,) if self._buckets is None else (CUT, BUCKET)
        frame.write.partitionBy(*by).parquet(str(path))
        for cut in todo:
            part = path / f"{CUT}={cut.isoformat()}"
            self._written[_key(cut, cfg)] = part if part.is_dir() else None

    def scores(
        self,
        cut: dt.date,
        cfg: FeaturesConfig,
        id_dtype: pl.DataType,
        bucket: int | None = None,
    ) -> pl.LazyFrame:
        """The columns at ``cut`` (computed now when not expected before): ``customer_id`` and
        ``features.influence.influence_columns(cfg)``, one row per node of the cut's graph (of
        ``bucket``'s nodes alone, when given and the graph was written by bucket)."""
        self.expect([cut], cfg)
        schema = pl.Schema({"customer_id": id_dtype, **influence_columns(cfg)})
        part = self._written[_key(cut, cfg)]
        files = [] if part is None else cut_files(part.parent, cut)  # none: no calls then
        if bucket is not None and self._buckets is not None:
            files = [f for f in files if bucket_of(f) == bucket]
        if not files:
            return pl.LazyFrame(schema=schema)
        scan = pl.scan_parquet(files, hive_partitioning=False)
        return scan.select(pl.col(name).cast(dtype) for name, dtype in schema.items())

    def sum_over_contacts(self, cut: dt.date, values: Parts, directory: Path) -> ContactSums:
        """Per node of the cut's graph, the sum of ``values``' ``value`` (``contact_id``,
        ``value``) over its contacts, nodes without one left out, written by the executors
        under ``directory`` (by the profile's buckets when the graph has them). The values are
        read where they lie (the executors' files of a map; else written there first as one
        file), joined to the cut's edges (:func:`cut_edges_frame`) and summed; nothing comes
        back to the driver but the plan of the written sums.

        Raises
        ------
        SparkJobError
            When the job fails: one line.
        """
        from churn.network import ContactSums
        from pipelines.spark.mapping import SparkParts
        from pipelines.spark.profile import SparkJobError, failure_cause

        if self._pairs is None:
            self._pairs = pair_months_frame(self._calls).localCheckpoint()
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        out = directory / "sums"
        id_dtype = values.plan().collect_schema()["contact_id"]
        if isinstance(values, SparkParts) and values.files:
            source = self._spark.read.parquet(*(str(f) for f in values.files))
        else:  # held here (the executors did not score): one file they read
            path = directory / "values.parquet"
            values.plan().select("contact_id", pl.col("value").cast(pl.Float64)).sink_parquet(path)
            source = self._spark.read.parquet(str(path))
        edges = cut_edges_frame(self._spark, self._pairs, [cut]).select("customer_id", "contact_id")
        summed = (
            edges.join(source.select("contact_id", "value"), on="contact_id")
            .groupBy("customer_id")
            .agg(F.sum("value").alias("value"))
        )
        if self._buckets is not None:  # by the profile's buckets: a part reads its own
            id_field = summed.schema["customer_id"].dataType
            id_type = pa.string() if isinstance(id_field, T.StringType) else pa.int64()
            ddl = f"customer_id {id_field.simpleString()}, value double, {BUCKET} long"
            summed = summed.mapInArrow(_bucket_task(id_type, self._buckets), ddl)
        try:
            writer = summed.write
            if self._buckets is not None:
                writer = writer.partitionBy(BUCKET)
            writer.parquet(str(out))
        except Exception as e:
            raise SparkJobError(
                f"the Spark job summing over the contacts at {cut} failed: {failure_cause(e)}"
            ) from None
        schema = {"customer_id": id_dtype, "value": pl.Float64()}
        if not any(out.rglob("*.parquet")):
            return ContactSums(pl.LazyFrame(schema=schema))
        if self._buckets is None:
            return ContactSums(pl.scan_parquet(out / "*.parquet"))
        plan = pl.scan_parquet(out / "**" / "*.parquet", hive_partitioning=True)
        return ContactSums(plan, buckets=self._buckets, bucket_column=BUCKET)


def _bucket_task(
    id_type: pa.DataType, buckets: int
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function adding each row's customer's bucket
    (:func:`features.sample.bucket_expr`, the profile's) in ``_bucket``."""
    schema = pa.schema([("customer_id", id_type), ("value", pa.float64()), (BUCKET, pa.int64())])

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            out = frame.with_columns(bucket_expr(buckets).cast(pl.Int64).alias(BUCKET))
            yield from out.to_arrow().cast(schema).to_batches()

    return run


class SparkContacts:
    """The call graph at a cut as network value reads it
    (:class:`churn.network.ContactGraph`), on the executors: the sums over contacts are a
    Spark join (:meth:`SparkCallGraph.sum_over_contacts`). No edge reaches the driver."""

    def __init__(self, graph: SparkCallGraph, cut: dt.date, directory: Path) -> None:
        self._graph, self._cut, self._directory = graph, cut, directory
        self._sums = 0

    def sum_over_contacts(self, values: Parts) -> ContactSums:
        directory = self._directory / f"sums-{self._sums:03d}"
        self._sums += 1
        return self._graph.sum_over_contacts(self._cut, values, directory)


def _key(cut: dt.date, cfg: FeaturesConfig) -> tuple[dt.date, int, int]:
    return (cut, cfg.contagion_days, cfg.pagerank_iterations)
