"""Input validation on Spark: every table's checks counted by the executors, a part at a time,
and the checks across tables as Spark joins; the driver holds counts, never customer rows.

The checks are :mod:`crm_engine.validation`'s, run through the same Polars reader and
expressions (:class:`~crm_engine.validation.TablePass`): a task reads a row group of a Parquet
file (a whole CSV table, or a hive-partitioned directory, in one task), casts it and counts
every check over it, and the driver adds the parts' counts up. The same task groups its rows by
each key column (``(kind, id, rows)``, with whether a customer is still one at ``as_of`` and
each buyer's first purchase day), and Spark joins those for the rows of unknown customers, the
repeated ids and whether there is enough to model. Only when a count is not zero does the
driver read examples for the message, over the failing rows, as the local validation does.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from crm_engine.commit import FAULT_ENV
from crm_engine.io import TableSource, scan_raw
from crm_engine.validation import TablePass, guarded
from crm_engine.validation_customers import (
    Scanned,
    report_duplicates,
    report_too_little,
    report_unknown,
)
from crm_engine.validation_report import MAX_EXAMPLES, ValidationReport
from pipelines.spark.inputs import ITEMS_PER_CORE, plain_parquet
from pipelines.spark.profile import (
    KILL_POINT,
    SparkJobError,
    _spark_type,
    failure_cause,
    inject_fault,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["KILL_IN_VALIDATION", "SparkReader", "pass_parts", "table_parts"]

Part = tuple[str, int, int] | None
"""A row group of a Parquet file, ``(file, first row, rows)``; None: the whole table."""
KILL_IN_VALIDATION = "spark_validation_worker"
"""``CRM_ENGINE_FAULT=spark_validation_worker@<path>``: the first validation task to create
``<path>`` kills its own Python worker, as :data:`~pipelines.spark.profile.KILL_POINT` does in
the profile tasks (tests: Spark retries it)."""
BROADCAST_CUSTOMERS = 5_000_000
"""Up to this many customers, their ids are sent to every executor to find the rows of unknown
customers (tens of MB); above, Spark joins by shuffling both sides."""
COUNTS = "__counts"
"""The ``kind`` of the row a task gives its counts in (a one-row IPC frame in ``blob``)."""


def table_parts(source: TableSource) -> list[Part]:
    """The parts of ``source`` a task each: the row groups of plain Parquet files, else the
    whole table (CSV, and directories whose partition columns come from the paths)."""
    if not plain_parquet(source):
        return [None]
    parts: list[Part] = []
    for path in source.files():
        meta = pq.ParquetFile(path).metadata
        first = 0
        for group in range(meta.num_row_groups):
            rows = meta.row_group(group).num_rows
            parts.append((str(path), first, rows))
            first += rows
    return parts or [None]


def _scan(source: TableSource, part: Part, schema: pl.Schema) -> pl.LazyFrame:
    """The rows of ``part`` as stored (Polars' reader, as the local validation reads them).

    Raises
    ------
    polars.exceptions.SchemaError
        When the part's file stores another schema than the table's.
    """
    if part is None:
        return scan_raw(source)
    path, first, rows = part
    raw = pl.scan_parquet(path)
    found = raw.collect_schema()
    if found != schema:
        raise pl.exceptions.SchemaError(f"{path}: its columns or types differ from the table's")
    return raw.slice(first, rows)


def _keyed(job: TablePass, lf: pl.LazyFrame) -> list[pl.LazyFrame]:
    """The part's rows by each key column: ``(kind, id, active, rows, first_buy)``.

    ``active`` (customers): still a customer at ``job.as_of``; ``first_buy``
    (transactions): the day of the customer's first purchase (a positive amount)."""
    names = set(lf.collect_schema().names())
    table = job.contract.name
    active = pl.lit(None, pl.Boolean)
    if table == "customers" and job.as_of is not None and {"signup_date", "churn_date"} <= names:
        as_of = pl.lit(job.as_of)
        active = (pl.col("signup_date") < as_of) & (
            pl.col("churn_date").is_null() | (pl.col("churn_date") >= as_of)
        )
    first, bought = pl.lit(None, pl.Date), []
    if table == "transactions" and {"ts", "amount"} <= names:
        first, bought = (
            pl.col("ts").filter(pl.col("amount") > 0).min().cast(pl.Date),
            ["ts", "amount"],
        )
    out = []
    for key in job.keys:
        keyed = lf.select(pl.col(key).alias("id"), active.alias("active"), *bought)
        summed = keyed.group_by("id", "active").agg(
            pl.len().cast(pl.Int64).alias("rows"), first.alias("first_buy")
        )
        out.append(summed.with_columns(pl.lit(key).alias("kind")))
    return out


def _ipc(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer)
    return buffer.getvalue()


def pass_parts(
    batches: Iterator[pa.RecordBatch],
    parts: list[Part],
    job: TablePass,
    arrow: pa.Schema,
    fault: str = "",
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` over part numbers (``id``): each part's counts (a row of kind
    :data:`COUNTS`, ``blob`` a one-row IPC frame of ``job.aggs()``) and its rows by key
    (:func:`_keyed`), as rows of ``arrow``. ``fault``: :data:`KILL_IN_VALIDATION` (tests)."""
    point, _, claim = fault.partition("@")
    for batch in batches:
        for i in batch.column("id").to_pylist():
            if point == KILL_IN_VALIDATION:
                inject_fault(f"{KILL_POINT}@{claim}")
            lf = job.frame(_scan(job.source, parts[i], job.schema))
            # one read and cast of the part for both (the plans share it: collect_all)
            found, *keyed = pl.collect_all([lf.select(job.aggs()), *_keyed(job, lf)])
            counts = pl.DataFrame({"kind": [COUNTS], "blob": [_ipc(found)]})
            rows = pl.concat([counts, *keyed], how="diagonal_relaxed")
            absent = [pl.lit(None).alias(c) for c in arrow.names if c not in rows.columns]
            rows = rows.with_columns(absent).select(arrow.names)
            yield from rows.to_arrow().cast(arrow).to_batches()


class SparkReader:
    """Validation's passes on Spark's executors (a :class:`crm_engine.validation.Reader`).

    A table's pass is one job (:func:`pass_parts`, a task per part); its rows by key (summed
    within each part) stay on the executors for the checks across tables (:meth:`across`).
    The ids of customers never reach the driver (:attr:`known` stays None).
    """

    known: pl.Series | None = None

    def __init__(self, spark: SparkSession) -> None:
        self._spark = spark
        self._keys: dict[str, DataFrame] = {}
        self._kinds: dict[str, tuple[str, ...]] = {}
        self._kept: list[DataFrame] = []
        self._ddl = ""
        self._arrow = pa.schema([])

    def start(
        self,
        found: dict[str, TableSource],
        id_dtype: pl.DataType,
        timezone: str,
        wanted: tuple[str, ...],
    ) -> None:
        id_type = _spark_type(id_dtype)
        self._ddl = (
            f"kind string, id {id_type}, rows long, active boolean, first_buy date, blob binary"
        )
        ids = pa.string() if id_dtype == pl.String else pa.int64()
        self._arrow = pa.schema(
            [
                ("kind", pa.string()),
                ("id", ids),
                ("rows", pa.int64()),
                ("active", pa.bool_()),
                ("first_buy", pa.date32()),
                ("blob", pa.binary()),
            ]
        )

    def counts(self, job: TablePass, lf: pl.LazyFrame) -> pl.DataFrame:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        parts = table_parts(job.source)
        spark = self._spark
        tasks = max(1, min(len(parts), ITEMS_PER_CORE * spark.sparkContext.defaultParallelism))
        fault = os.environ.get(FAULT_ENV, "")  # read here: the workers' env is not the driver's
        run = partial(pass_parts, parts=parts, job=job, arrow=self._arrow, fault=fault)
        rows = spark.range(len(parts), numPartitions=tasks).mapInArrow(run, self._ddl)
        name = job.contract.name
        self._kinds[name] = job.keys
        kept = rows.persist(StorageLevel.MEMORY_AND_DISK)  # released by across()
        self._kept.append(kept)
        try:  # one job: each part read once, its rows by key kept for across()
            blobs = kept.where(F.col("kind") == COUNTS).select("blob").collect()
        except Exception as e:
            raise SparkJobError(f"validating {name} on Spark: {failure_cause(e)}") from None
        keyed = kept.where(F.col("kind") != COUNTS).drop("blob")
        self._keys[name] = keyed.withColumn("table", F.lit(name))
        return TablePass.merged(pl.concat(pl.read_ipc(io.BytesIO(b["blob"])) for b in blobs))

    def across(
        self, frames: dict[str, Scanned], report: ValidationReport, min_customers: int
    ) -> None:
        """The checks across tables as Spark joins of the tables' rows by key; those rows are
        released from the executors afterwards."""
        try:
            self._across(frames, report, min_customers)
        finally:
            for kept in self._kept:
                kept.unpersist()
            self._kept.clear()

    def _across(
        self, frames: dict[str, Scanned], report: ValidationReport, min_customers: int
    ) -> None:
        from pyspark.sql import functions as F

        if "customers" not in frames or "customers" not in self._keys:
            return
        file = frames["customers"].file
        customers = self._keys["customers"].where(F.col("kind") == "customer_id")
        ids = customers.where(F.col("id").isNotNull()).groupBy("id").agg(F.sum("rows").alias("n"))
        ids = ids.persist()  # rows per id: the repeated ones, and the known ids below
        self._kept.append(ids)
        with guarded(report, "customers", file):
            repeated = ids.where(F.col("n") > 1)
            found = repeated.agg(F.count("*").alias("ids"), F.sum("n").alias("rows")).first()
            assert found is not None
            first = _first(repeated, [], found["ids"])
            report_duplicates(
                int(found["rows"] or 0), int(found["ids"]), first.get((), []), file, report
            )
        others = [n for n in frames if n != "customers" and n in self._keys]
        if others:
            known = ids.select("id").withColumn("known", F.lit(True))
            rows = {t.name: t.rows or 0 for t in report.tables}
            if rows.get("customers", 0) <= BROADCAST_CUSTOMERS:  # no shuffle of the others
                known = F.broadcast(known)
            with guarded(report, "customers", file):  # the rows of the others against its ids
                self._orphans([(n, frames[n]) for n in others], known)
            for name in others:
                if frames[name].orphans is not None:
                    report_unknown(name, frames[name], report)
        as_of, tx = report.as_of, frames.get("transactions")
        if (
            as_of is None
            or min_customers <= 0
            or tx is None
            or "transactions" not in self._keys
            or not {"signup_date", "churn_date"} <= set(frames["customers"].lf.collect_schema())
            or not {"customer_id", "ts", "amount"} <= set(tx.lf.collect_schema())
        ):
            return
        with guarded(report, "customers", file):
            bought = self._keys["transactions"].where(
                (F.col("kind") == "customer_id") & (F.col("first_buy") < F.lit(as_of))
            )
            buyers = bought.where(F.col("id").isNotNull()).select("id").distinct()
            buyers = buyers.withColumn("buyer", F.lit(True))
            active = customers.where(F.col("active")).join(buyers, "id", "left")
            found = active.agg(
                F.sum("rows").alias("active"),
                F.sum(F.when(F.col("buyer"), F.col("rows"))).alias("buyers"),
            ).first()
            assert found is not None
            n_active, n_buyers = int(found["active"] or 0), int(found["buyers"] or 0)
            report_too_little(n_active, n_buyers, file, as_of, min_customers, report)

    def _orphans(self, tables: list[tuple[str, Scanned]], known: DataFrame) -> None:
        """Each table's rows for unknown customers per key, and their ids: one join of every
        table's rows by key with the ids of customers (``known``), and, only when there are
        unknown customers, one more for their ids and the first of them."""
        from pyspark.sql import functions as F

        keyed = [self._keys[name] for name, _ in tables]
        rows = keyed[0]
        for other in keyed[1:]:
            rows = rows.unionByName(other)
        joined = rows.where(F.col("id").isNotNull()).join(known, "id", "left")
        lost = F.col("known").isNull()
        counts = joined.groupBy("table", "kind").agg(
            F.sum("rows").alias("total"), F.sum(F.when(lost, F.col("rows"))).alias("n")
        )
        found = {(r["table"], r["kind"]): r for r in counts.collect()}
        ids: dict[tuple[str, str], int] = {}
        first: dict[tuple[Any, ...], list[Any]] = {}
        if any(r["n"] for r in found.values()):  # the rare path: which ids
            unknown = joined.where(lost).select("table", "kind", "id").distinct()
            ids = {(r[0], r[1]): r[2] for r in unknown.groupBy("table", "kind").count().collect()}
            first = _first(unknown, ["table", "kind"], sum(ids.values()))
        for name, scanned in tables:
            scanned.orphans, scanned.orphan_details = {}, {}
            for key in self._kinds[name]:
                r = found.get((name, key))
                n, total = (int(r["n"] or 0), int(r["total"] or 0)) if r else (0, 0)
                scanned.orphans[key] = (n, total)
                if n and r is not None:
                    examples = tuple(f"{key}={v}" for v in first.get((name, key), []))
                    scanned.orphan_details[key] = (ids[(name, key)], examples)


def _first(ids: DataFrame, by: list[str], count: Any) -> dict[tuple[Any, ...], list[Any]]:
    """The smallest :data:`MAX_EXAMPLES` values of ``ids``' column ``id`` per value of ``by``
    (nothing is read when ``count`` is 0)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not count:
        return {}
    if not by:
        return {(): [r["id"] for r in ids.select("id").orderBy("id").limit(MAX_EXAMPLES).collect()]}
    rank = F.row_number().over(Window.partitionBy(*by).orderBy("id"))
    ranked = ids.withColumn("_rank", rank).where(F.col("_rank") <= MAX_EXAMPLES)
    out: dict[tuple[Any, ...], list[Any]] = {}
    for r in ranked.orderBy(*by, "id").collect():
        out.setdefault(tuple(r[c] for c in by), []).append(r["id"])
    return out
