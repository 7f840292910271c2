"""Point-in-time profiles on Apache Spark, computed by our own Polars ``features.build_profile``.

The plan (DESIGN §7):

1. Every customer-keyed input table (all but ``calls``) is read by Spark from its files in
   ``data.dir``, as :func:`crm_engine.io.find_tables` finds them. A ``mapInArrow`` casts each
   batch to the contract exactly as the local backend does (:func:`crm_engine.io.cast_expr`,
   Polars), puts each row in its bucket (:func:`features.sample.bucket_expr`, as the local
   backend's split) and packs each bucket's rows of the batch into one Arrow IPC blob: rows
   ``(bucket, table, blob)``, partitioned by bucket (:func:`pipelines.spark.inputs.
   bucket_blobs`; a run keeps them on the executors).
2. The blobs are grouped by bucket (``applyInArrow``): every row of a customer meets in one
   task, which unpacks its tables once and runs ``features.build_profile`` at every cut of
   the batch, without the call graph (and with the batch's
   :class:`~features.sample.CustomerSample`); the executors write the rows as Parquet, a
   directory per cut (:func:`write_profiles`).
3. The call-graph columns need the whole graph: they come from the run's
   :class:`~pipelines.spark.influence.SparkCallGraph` (``calls`` read once a run, the cuts of
   a batch computed together, PageRank in a task per cut, written by the executors) and are
   joined like the local profile joins them (0 for customers without calls).

The driver then reads a cut's files, rounded, ordered and sorted as ``build_profile`` does:
the same DataFrame as the local backend's (:func:`read_profile`), or everyone's written to the
run's spill a file at a time (:func:`write_profile`).

A stage's per-customer scoring of everyone runs on those files too
(:mod:`pipelines.spark.mapping`).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from crm_engine.commit import FAULT_ENV
from crm_engine.config import FeaturesConfig
from crm_engine.contracts import INPUT_TABLES
from crm_engine.io import DataError, TableSource, cast_expr, find_tables
from features.influence import attach_influence
from features.profile import finish_profile
from features.sample import CustomerSample, buckets_holding

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from pipelines.spark.influence import SparkCallGraph

__all__ = [
    "FAULT_POINT",
    "KILL_POINT",
    "SparkJobError",
    "call_graph",
    "collect_file",
    "expect_cuts",
    "failure_cause",
    "inject_fault",
    "profile_scan",
    "read_profile",
    "spark_profile",
    "write_profile",
    "write_profiles",
]

FAULT_POINT = "spark_task"
"""``CRM_ENGINE_FAULT=spark_task`` makes every per-bucket task raise (tests)."""

KILL_POINT = "spark_worker"
"""``CRM_ENGINE_FAULT=spark_worker@<path>``: the first task (per-bucket, or scoring) to create
``<path>`` kills its own Python worker (SIGKILL, as the kernel's OOM killer would); every later
task, its retry included, runs normally (tests)."""

FILE_ROWS = 250_000
"""Rows per Parquet file the executors write at most (``maxRecordsPerFile``): what the driver
finishes at a time when it writes everyone's profile (:func:`write_profile`)."""

CUT = "_cut"
"""The column naming the cut (a date) a row of several cuts' frames belongs to (and the
Parquet partition ``_cut=<date>`` its files are written in)."""
BUCKET = "_bucket"
"""The Parquet partition ``_bucket=<n>`` inside a cut's directory: the customers of bucket ``n``
(:func:`features.sample.bucket_expr`), for the profiles and the call-graph columns alike, so a
file of the profile is finished with its own bucket's call-graph rows only."""


def cut_files(directory: Path, cut: dt.date) -> list[Path]:
    """The Parquet files of the cut ``cut`` written under ``directory`` (a ``_bucket=<n>``
    directory each, or directly in the cut's), sorted; none for a cut without rows."""
    part = directory / f"{CUT}={cut.isoformat()}"
    if not part.is_dir():
        return []
    return sorted([*part.glob("*.parquet"), *part.glob(f"{BUCKET}=*/*.parquet")])


def bucket_of(path: Path) -> int | None:
    """The bucket a file of :func:`cut_files` holds (None outside a ``_bucket=<n>`` directory)."""
    key, _, value = path.parent.name.partition("=")
    return int(value) if key == BUCKET and value.isdigit() else None


class SparkJobError(RuntimeError):
    """A Spark job of the backend failed; the message is one line naming the job and cause."""


# --- on the executors ------------------------------------------------------------------------


def _cast(frame: pl.DataFrame, name: str, target: pl.Schema, timezone: str) -> pl.DataFrame:
    """Cast a batch of table ``name`` as read by Spark to ``target`` (the local scan's schema).

    Contract columns are cast by :func:`crm_engine.io.cast_expr`, as the local scan casts them;
    other columns to their type in the local scan. The key columns take the run's id type as
    ``target`` has it (``calls`` has no ``customer_id``: its ``caller_id``'s; text ids were
    read as integers there, all null, and the call graph came out empty).
    """
    table = INPUT_TABLES[name]
    id_dtype = next((target[k] for k in table.keys if k in target), pl.Int64())
    contract = table.polars_schema(id_dtype)
    exprs = []
    for column, dtype in target.items():
        if column not in frame.columns:
            exprs.append(pl.lit(None, dtype).alias(column))
        elif column in contract:
            exprs.append(cast_expr(column, frame.schema[column], contract[column], timezone))
        else:
            exprs.append(pl.col(column).cast(dtype, strict=False))
    return frame.select(exprs).cast(dict(target.items()))  # type: ignore[arg-type]


def inject_fault(fault: str) -> None:
    """The fault ``$CRM_ENGINE_FAULT`` names for a task (read on the driver): a per-bucket
    profile task, or a task scoring a file of everyone's profile
    (:func:`pipelines.spark.mapping.map_task`)."""
    point, _, argument = fault.partition("@")
    if point == FAULT_POINT:
        raise RuntimeError(f"injected fault {FAULT_ENV}={fault} in a profile task")
    if point == KILL_POINT:
        try:
            os.close(os.open(argument, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # another task was the one
        os.kill(os.getpid(), signal.SIGKILL)


def profile_task(
    schemas: dict[str, pl.Schema],
    cuts: Sequence[dt.date],
    cfg: FeaturesConfig,
    sample: CustomerSample | None,
    out_schema: pa.Schema,
    fault: str,
) -> Callable[[pa.Table], pa.Table]:
    """The ``applyInArrow`` function of the profiles at ``cuts``: per bucket, unpack the
    bucket's tables once and run ``features.build_profile`` (without the call graph) at every
    cut, each row's cut in ``_cut``.

    A closure, not a ``functools.partial`` or a callable object: PySpark reads the eval type
    off the function's type hints and counts its arguments to decide whether to pass the key.
    """

    def run(group: pa.Table) -> pa.Table:
        import features

        inject_fault(fault)
        bucket = group.column("bucket")[0].as_py() if group.num_rows else None
        names = group.column("table").to_pylist()
        blobs = group.column("blob").to_pylist()
        tables: dict[str, pl.LazyFrame] = {}
        for name, schema in schemas.items():
            parts = [
                pl.read_ipc(io.BytesIO(b)) for n, b in zip(names, blobs, strict=True) if n == name
            ]
            frame = pl.concat(parts) if parts else pl.DataFrame(schema=schema)
            tables[name] = frame.lazy()
        profiles = [
            features.build_profile(tables, cut, cfg, sample)
            .with_columns(pl.lit(cut, pl.Date).alias(CUT), pl.lit(bucket, pl.Int64).alias(BUCKET))
            .collect()
            for cut in cuts
        ]
        return pl.concat(profiles).to_arrow().cast(out_schema)

    return run


# --- on the driver -----------------------------------------------------------------------------


def _spark_type(dtype: pl.DataType) -> str:
    """Spark DDL type of a profile column's dtype."""
    types = {
        pl.Int64: "long",
        pl.Int32: "int",
        pl.Float64: "double",
        pl.Boolean: "boolean",
        pl.String: "string",
        pl.Date: "date",
    }
    base = dtype.base_type()
    if base not in types:
        raise SparkJobError(f"profile column type {dtype} has no Spark type in the Spark backend")
    return types[base]


def read_source(spark: SparkSession, source: TableSource) -> DataFrame:
    """The table's files read by Spark as stored (CSV columns as text), like ``scan_raw``."""
    if source.kind == "csv":
        return (
            spark.read.option("header", True)
            .option("inferSchema", False)
            .option("multiLine", True)
            .option("escape", '"')
            .csv(str(source.path))
        )
    if source.kind == "parquet":
        return spark.read.parquet(str(source.path))
    files = [str(p) for p in source.files()]
    if not files:
        raise DataError(f"table {source.name}: no Parquet files under {source.path}")
    # the same files as the local scan (``**/*.parquet``), hive partitions kept from basePath
    return spark.read.option("basePath", str(source.path)).parquet(*files)


def failure_cause(error: BaseException) -> str:
    """One line out of a Spark error: the Python exception a task raised, else Spark's own
    innermost reason (a crashed worker, a lost executor) with how often the task failed, else
    the first line."""
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    raised = [
        line
        for line in lines
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(: |$)", line)
    ]
    if raised:
        return raised[-1]
    reasons = [line for line in lines if "SparkException: " in line]
    if reasons:
        reason = reasons[0].rsplit("SparkException: ", 1)[1].split(". Consider ")[0]
        failed = re.search(r"failed (\d+) times", text)
        if failed is None:
            return reason
        tries = int(failed.group(1))
        return f"{reason} (a task tried {tries} time{'s' if tries > 1 else ''})"
    return lines[0] if lines else type(error).__name__


def call_graph(
    spark: SparkSession,
    data_dir: Path,
    tables: dict[str, pl.LazyFrame],
    directory: Path,
    timezone: str = "UTC",
    buckets: int | None = None,
) -> SparkCallGraph:
    """The run's call graph on Spark (:class:`~pipelines.spark.influence.SparkCallGraph`):
    ``calls`` and ``customers`` read from ``data_dir`` on the executors and cast to the
    contract as the local scan casts them (:func:`pipelines.spark.inputs.contract_frame`); the
    cuts' columns written under ``directory``, by the profile's ``buckets`` when given."""
    from pipelines.spark.influence import SparkCallGraph
    from pipelines.spark.inputs import contract_frame

    sources = find_tables(Path(data_dir))
    calls = contract_frame(spark, sources["calls"], tables["calls"], timezone)
    customers = contract_frame(spark, sources["customers"], tables["customers"], timezone)
    return SparkCallGraph(spark, calls, customers, directory, buckets)


def expect_cuts(graph: SparkCallGraph, cuts: Sequence[dt.date], cfg: FeaturesConfig) -> None:
    """:meth:`SparkCallGraph.expect`, a failed Spark job as one line."""
    what = "the call graph at " + ", ".join(c.isoformat() for c in sorted(set(cuts)))
    try:  # PageRank runs a job per step or two before the frame is written
        graph.expect(cuts, cfg)
    except Exception as e:
        raise SparkJobError(f"the Spark job computing {what} failed: {failure_cause(e)}") from None


def _input_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "timestamp_ntz" if dtype.time_zone is None else "timestamp"
    return _spark_type(dtype)


def _arrow_schema(schema: pl.Schema) -> pa.Schema:
    """The Arrow schema of a frame of ``schema`` as a task returns it (text as ``string``)."""
    fields = pl.DataFrame(schema=schema).to_arrow().schema
    return pa.schema(
        [
            pa.field(f.name, pa.string() if pa.types.is_large_string(f.type) else f.type)
            for f in fields
        ]
    )


def write_profiles(
    blobs: DataFrame,
    buckets: int,
    tables: dict[str, pl.LazyFrame],
    cuts: Sequence[dt.date],
    cfg: FeaturesConfig,
    sample: CustomerSample | None,
    directory: Path,
) -> None:
    """The profiles at ``cuts`` (without the call graph) in one Spark job, one task per bucket
    computing every cut, written by the executors as Parquet under ``directory``, a directory
    ``_cut=<date>/_bucket=<n>`` per cut and bucket (none for a cut without customers),
    :data:`FILE_ROWS` rows a file at most.

    ``blobs`` are :func:`bucket_blobs` of ``buckets`` buckets: a sample's job reads only the
    buckets it lies in (:func:`features.sample.buckets_holding`), as the local backend does.

    Raises
    ------
    SparkJobError
        When the job fails (a task raised, an executor died): one line.
    """
    import features

    id_dtype = tables["customers"].collect_schema()["customer_id"]
    keyed = [name for name in tables if name != "calls"]
    schemas = {name: tables[name].collect_schema() for name in keyed}
    bucket_schema = features.profile_schema(cfg, frozenset(keyed), id_dtype)
    out = pl.Schema({**bucket_schema, CUT: pl.Date(), BUCKET: pl.Int64()})
    out_ddl = ", ".join(f"`{c}` {_spark_type(t)}" for c, t in out.items())
    build = profile_task(
        schemas=schemas,
        cuts=list(cuts),
        cfg=cfg,
        sample=sample,
        out_schema=_arrow_schema(out),
        fault=os.environ.get(FAULT_ENV, ""),  # read here: the workers' env is not the driver's
    )
    dates = ", ".join(c.isoformat() for c in cuts)
    what = f"the profiles at {dates}" + (f" (sample {sample.share:g})" if sample else "")
    holding = buckets_holding(sample, buckets)
    if len(holding) < buckets:
        blobs = blobs.where(blobs["bucket"] < len(holding))
    frame = blobs.groupBy("bucket").applyInArrow(build, out_ddl)
    try:
        writer = frame.write.option("maxRecordsPerFile", FILE_ROWS).partitionBy(CUT, BUCKET)
        writer.parquet(str(directory))
    except Exception as e:
        raise SparkJobError(f"the Spark job computing {what} failed: {failure_cause(e)}") from None


def profile_scan(
    directory: Path,
    tables: dict[str, pl.LazyFrame],
    cut: dt.date,
    cfg: FeaturesConfig,
    graph: SparkCallGraph | None,
    files: list[Path] | None = None,
) -> tuple[pl.LazyFrame, pl.Schema]:
    """The profile at ``cut`` that :func:`write_profiles` wrote under ``directory`` (only
    ``files`` of it when given) with the call-graph columns of ``graph`` (computed now unless
    expected before), finished as ``features.build_profile`` finishes it; and its schema."""
    import features

    id_dtype = tables["customers"].collect_schema()["customer_id"]
    keyed = frozenset(name for name in tables if name != "calls")
    bucket_schema = features.profile_schema(cfg, keyed, id_dtype)
    paths = files if files is not None else cut_files(directory, cut)
    profile = (
        pl.scan_parquet(paths, hive_partitioning=False).cast(
            dict(bucket_schema.items())  # type: ignore[arg-type]
        )
        if paths
        else pl.LazyFrame(schema=bucket_schema)
    )
    if graph is not None:
        expect_cuts(graph, [cut], cfg)
        # files of one bucket read only that bucket's part of the cut's table
        buckets = {bucket_of(f) for f in files} if files is not None else {None}
        scores = graph.scores(cut, cfg, id_dtype, buckets.pop() if len(buckets) == 1 else None)
        if files is not None:  # only the files' customers of the cut's table: a join of
            # everyone's would build a hash table of every node for each file
            scores = scores.join(profile.select("customer_id"), on="customer_id", how="semi")
        profile = attach_influence(profile, scores, cfg)
    expected = features.profile_schema(cfg, frozenset(tables), id_dtype)
    return finish_profile(profile, expected), expected


def collect_file(plan: pl.LazyFrame) -> pl.DataFrame:
    """A file of everyone's profile, finished (:func:`profile_scan` of ``files``), collected by
    Polars' streaming engine: the cut's call-graph table (a row per node of the graph) is
    streamed through the semi join with the file's customers, never held whole. On 10M nodes
    and a file of 250,000 customers the process peaked at 0.58 GB, against 0.93 GB for the
    left join of the whole table in memory (same rows)."""
    return plan.collect(engine="streaming")


def read_profile(
    directory: Path,
    tables: dict[str, pl.LazyFrame],
    cut: dt.date,
    cfg: FeaturesConfig,
    graph: SparkCallGraph | None,
) -> pl.DataFrame:
    """The profile at ``cut`` that :func:`write_profiles` wrote under ``directory``, with the
    call-graph columns of ``graph`` (computed now unless expected before), finished as
    ``features.build_profile`` finishes it: the local backend's frame."""
    return profile_scan(directory, tables, cut, cfg, graph)[0].collect()


def write_profile(
    directory: Path,
    tables: dict[str, pl.LazyFrame],
    cut: dt.date,
    cfg: FeaturesConfig,
    graph: SparkCallGraph | None,
    path: Path,
) -> int:
    """The frame :func:`read_profile` gives, written to ``path`` (Parquet, LZ4, by
    ``customer_id``) without holding it: each file the executors wrote is finished, sorted and
    written beside ``path``, then the parts are merged
    (:func:`pipelines.buckets.merge_sorted_parts`) and removed. Returns the rows written."""
    from pipelines.buckets import PART_ROW_GROUP, merge_sorted_parts

    written = cut_files(directory, cut)
    parts = path.with_name(path.stem + ".parts")
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True)
    files: list[Path] = []
    schema = pl.Schema()
    for i, source in enumerate(written):
        frame, schema = profile_scan(directory, tables, cut, cfg, graph, [source])
        files.append(parts / f"part-{i:05d}.parquet")
        collect_file(frame).write_parquet(
            files[-1], compression="lz4", row_group_size=PART_ROW_GROUP
        )
    if not written:
        schema = profile_scan(directory, tables, cut, cfg, graph)[1]
    rows = merge_sorted_parts(files, "customer_id", path, schema)
    shutil.rmtree(parts)
    return rows


def spark_profile(
    spark: SparkSession,
    data_dir: Path,
    tables: dict[str, pl.LazyFrame],
    as_of: dt.date,
    cfg: FeaturesConfig,
    sample: CustomerSample | None = None,
    *,
    buckets: int = 8,
    timezone: str = "UTC",
) -> pl.DataFrame:
    """The profile at ``as_of`` computed on Spark; equal to ``features.build_profile``'s.

    One profile on its own, its files in a temporary directory (a run computes its profiles
    with :class:`pipelines.spark.SparkProfiles`: the tables packed once, the cuts a stage
    expects together).

    Parameters
    ----------
    spark
        The session to run on.
    data_dir
        Where the input tables' files are (``data.dir``): Spark reads them itself.
    tables
        The run's tables as the local scan casts them (``crm_engine.io.load_tables``): their
        names and schemas say which files to read and what to cast them to.
    as_of, cfg, sample
        As for ``features.build_profile``.
    buckets
        Hash buckets of ``customer_id``: one Polars task each.
    timezone
        ``data.timezone``: the wall clock timestamps are cast to.

    Raises
    ------
    DataError
        When a table of ``tables`` has no files under ``data_dir``.
    SparkJobError
        When a Spark job fails (a task raised, an executor died): one line.
    """
    from pipelines.spark.inputs import bucket_blobs

    blobs = bucket_blobs(spark, data_dir, tables, buckets=buckets, timezone=timezone)
    with tempfile.TemporaryDirectory() as scratch:
        graph = None
        if "calls" in tables:
            graph = call_graph(spark, data_dir, tables, Path(scratch) / "graph", timezone, buckets)
        directory = Path(scratch) / "profiles"
        write_profiles(blobs, buckets, tables, [as_of], cfg, sample, directory)
        return read_profile(directory, tables, as_of, cfg, graph)
