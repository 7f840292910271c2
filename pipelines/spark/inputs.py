"""The input tables on Spark: read (by the Python workers themselves where they can), cast to
the contract exactly as the local backend casts them (:func:`pipelines.spark.profile._cast`,
Polars), and, for the customer-keyed ones, packed by bucket once a run.

Every keyed table (all but ``calls``) becomes rows ``(bucket, table, blob)``: a blob is one
Arrow IPC frame of a bucket's rows of a batch, bucketed as the local split buckets them
(:func:`features.sample.bucket_expr`). :func:`bucket_blobs` partitions them by bucket: a run
keeps them on the executors and computes every profile from them
(:func:`pipelines.spark.profile.write_profiles`). The call graph reads ``calls`` and
``customers`` as rows of the contract (:func:`contract_frame`).

Plain Parquet files (a file, or a directory of parts without hive partitions) are read by the
Python workers, a row group per item (:func:`read_row_groups`): at 1M customers the six keyed
tables were packed in 20 s against 48 s when Spark read them and handed the rows to Python as
Arrow batches, and ``calls`` (9.5M rows) summed into pair-months in 17.0-17.5 s against
19.0-19.8 s (``local[2]``, the same rows). CSV tables and hive-partitioned directories (whose
partition columns come from the paths) are read by Spark
(:func:`pipelines.spark.profile.read_source`), as the local scan reads them.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from crm_engine.io import DataError, TableSource, find_tables
from features.point_in_time import TableFn
from features.sample import CustomerSample, bucket_expr, buckets_holding
from pipelines.spark.profile import (
    SparkJobError,
    _cast,
    _input_type,
    failure_cause,
    read_source,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "BLOB_DDL",
    "aggregate_blobs",
    "apply_blobs",
    "bucket_blobs",
    "cast_batches",
    "contract_frame",
    "keep_calls",
    "keep_sample",
    "pack_batches",
    "plain_parquet",
    "read_row_groups",
    "sample_calls",
    "sample_table",
]

BLOB_DDL = "bucket long, table string, blob binary"
"""The packed rows' Spark schema."""
SAMPLE_DDL = "table string, blob binary"
"""A sample's rows of a packed table (:func:`sample_table`)."""
ITEMS_PER_CORE = 16
"""Tasks per core of the session's default parallelism that read the row groups (at most one
task per row group)."""


def _ipc(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="lz4")
    return buffer.getvalue()


def pack_batches(
    batches: Iterator[pa.RecordBatch],
    name: str,
    target: pl.Schema,
    timezone: str,
    buckets: int,
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` of one table: cast each batch, bucket its rows, one IPC blob per bucket."""
    for batch in batches:
        if batch.num_rows == 0:
            continue
        frame = _cast(pl.from_arrow(pa.Table.from_batches([batch])), name, target, timezone)
        bucket = bucket_expr(buckets).cast(pl.Int64)
        parts = frame.with_columns(bucket.alias("_bucket")).partition_by(
            "_bucket", as_dict=True, include_key=False
        )
        keys = [int(key[0]) for key in parts]  # type: ignore[arg-type]
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(keys, pa.int64()),
                pa.array([name] * len(keys), pa.string()),
                pa.array([_ipc(part) for part in parts.values()], pa.binary()),
            ],
            names=["bucket", "table", "blob"],
        )


def cast_batches(
    batches: Iterator[pa.RecordBatch], name: str, target: pl.Schema, timezone: str
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` of one table: each batch cast to the contract, as rows."""
    for batch in batches:
        frame = _cast(pl.from_arrow(pa.Table.from_batches([batch])), name, target, timezone)
        yield from frame.to_arrow().to_batches()


def _pack_table(
    name: str, rows: pa.Table, targets: dict[str, pl.Schema], timezone: str, buckets: int
) -> Iterator[pa.RecordBatch]:
    return pack_batches(rows.to_batches(), name, targets[name], timezone, buckets)


def _cast_table(
    name: str, rows: pa.Table, targets: dict[str, pl.Schema], timezone: str
) -> Iterator[pa.RecordBatch]:
    return cast_batches(rows.to_batches(), name, targets[name], timezone)


def read_row_groups(
    batches: Iterator[pa.RecordBatch],
    items: list[tuple[str, str, int]],
    handle: Callable[[str, pa.Table], Iterator[pa.RecordBatch]],
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` over item numbers (``id``): item ``i`` is ``(table, file, row group)``,
    read here (pyarrow) and handed to ``handle`` with its table's name (packed, or cast)."""
    for batch in batches:
        for i in batch.column("id").to_pylist():
            name, path, group = items[i]
            yield from handle(name, pq.ParquetFile(path).read_row_group(group).combine_chunks())


def plain_parquet(source: TableSource) -> bool:
    """Parquet files a worker reads alone: a file, or a directory without hive partitions
    (``key=value`` directories, whose columns the readers add from the paths)."""
    if source.kind == "parquet":
        return True
    if source.kind != "parquet_dir":
        return False
    return not any(
        "=" in part for f in source.files() for part in f.relative_to(source.path).parts[:-1]
    )


def _by_workers(
    spark: SparkSession,
    sources: list[TableSource],
    handle: Callable[[str, pa.Table], Iterator[pa.RecordBatch]],
    ddl: str,
) -> DataFrame:
    """The tables of ``sources`` read by the workers, a row group per item, and ``handle``d."""
    items = [
        (source.name, str(path), group)
        for source in sources
        for path in source.files()
        for group in range(pq.ParquetFile(path).metadata.num_row_groups)
    ]
    tasks = max(1, min(len(items), ITEMS_PER_CORE * spark.sparkContext.defaultParallelism))
    read = partial(read_row_groups, items=items, handle=handle)
    return spark.range(len(items), numPartitions=tasks).mapInArrow(read, ddl)


def contract_frame(
    spark: SparkSession, source: TableSource, lazy: pl.LazyFrame, timezone: str
) -> DataFrame:
    """A table as a Spark DataFrame cast to the contract (the call graph's inputs)."""
    target = lazy.collect_schema()
    ddl = ", ".join(f"`{c}` {_input_type(t)}" for c, t in target.items())
    if plain_parquet(source):
        cast = partial(_cast_table, targets={source.name: target}, timezone=timezone)
        return _by_workers(spark, [source], cast, ddl)
    cast_read = partial(cast_batches, name=source.name, target=target, timezone=timezone)
    return read_source(spark, source).mapInArrow(cast_read, ddl)


def bucket_blobs(
    spark: SparkSession,
    data_dir: Path,
    tables: dict[str, pl.LazyFrame],
    *,
    buckets: int = 8,
    timezone: str = "UTC",
) -> DataFrame:
    """Every customer-keyed table of ``tables`` read from its files in ``data_dir``, cast to
    the contract and packed by bucket: rows ``(bucket, table, blob)``, partitioned by
    ``bucket`` (a run keeps it on the executors and computes every profile from it).

    Raises
    ------
    DataError
        When a table of ``tables`` has no files under ``data_dir``.
    """
    sources = find_tables(Path(data_dir))
    absent = [name for name in tables if name not in sources]
    if absent:
        raise DataError(f"the Spark backend reads tables from {data_dir}: not found {absent}")
    keyed = [name for name in tables if name != "calls"]
    targets = {name: tables[name].collect_schema() for name in keyed}
    plain = [sources[n] for n in keyed if plain_parquet(sources[n])]
    packed = [
        read_source(spark, sources[n]).mapInArrow(
            partial(pack_batches, name=n, target=targets[n], timezone=timezone, buckets=buckets),
            BLOB_DDL,
        )
        for n in keyed
        if sources[n] not in plain
    ]
    if plain:
        pack = partial(_pack_table, targets=targets, timezone=timezone, buckets=buckets)
        packed.append(_by_workers(spark, plain, pack, BLOB_DDL))
    blobs = packed[0]
    for other in packed[1:]:
        blobs = blobs.unionByName(other)
    return blobs.repartition(buckets, "bucket")


_WRITING = threading.Lock()
"""One sample job at a time: Polars may collect a plan that reads one deferred table twice
(:meth:`~pipelines.spark.SparkProfiles.sampled`) in two threads at once."""


def _written_once(rows: DataFrame, directory: Path, what: str) -> list[Path]:
    """``rows`` written by the executors under ``directory`` unless a complete write is there
    (Spark's ``_SUCCESS``: a failed one is written again); its Parquet files.

    Raises
    ------
    SparkJobError
        When the job fails: one line naming ``what`` it read.
    """
    with _WRITING:
        if not (directory / "_SUCCESS").exists():
            try:
                rows.write.mode("overwrite").parquet(str(directory))
            except Exception as e:
                raise SparkJobError(
                    f"the Spark job reading {what} failed: {failure_cause(e)}"
                ) from None
    return sorted(directory.glob("*.parquet"))


def keep_sample(
    batches: Iterator[pa.RecordBatch], sample: CustomerSample
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` over packed rows: each blob's rows of ``sample``'s customers, packed
    again; a blob left empty is dropped."""
    keep = sample.expr()
    for batch in batches:
        names: list[str] = []
        kept: list[bytes] = []
        pairs = zip(
            batch.column("table").to_pylist(), batch.column("blob").to_pylist(), strict=True
        )
        for name, blob in pairs:
            rows = pl.read_ipc(io.BytesIO(blob)).filter(keep)
            if rows.height:
                names.append(name)
                kept.append(_ipc(rows))
        yield pa.RecordBatch.from_arrays(
            [pa.array(names, pa.string()), pa.array(kept, pa.binary())], names=["table", "blob"]
        )


def sample_table(
    blobs: DataFrame,
    buckets: int,
    sample: CustomerSample,
    name: str,
    schema: pl.Schema,
    directory: Path,
) -> pl.DataFrame:
    """``sample``'s rows of the packed table ``name`` (:func:`bucket_blobs` of ``buckets``
    buckets; ``schema``, its contract's): kept by the executors from the buckets holding the
    sample only (:func:`keep_sample`) and written under ``directory`` the first time they are
    asked for, then read from there: a fit on the sample reads its rows, never a whole
    table, on the driver.

    Raises
    ------
    SparkJobError
        When the job fails: one line.
    """
    holding = buckets_holding(sample, buckets)
    mine = blobs["table"] == name
    if len(holding) < buckets:
        mine = mine & (blobs["bucket"] < len(holding))
    kept = blobs.where(mine).mapInArrow(partial(keep_sample, sample=sample), SAMPLE_DDL)
    files = _written_once(kept, directory, f"table {name}'s rows of a sample ({sample.share:g})")
    packed = [b for f in files for b in pq.read_table(f, columns=["blob"]).column(0).to_pylist()]
    frames = [pl.read_ipc(io.BytesIO(b)) for b in packed]
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def apply_blobs(batches: Iterator[pa.RecordBatch], fn: TableFn) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` over packed rows: ``fn`` of each blob's rows, as one IPC blob."""
    for batch in batches:
        done = [
            _ipc(fn(pl.read_ipc(io.BytesIO(b)).lazy())) for b in batch.column("blob").to_pylist()
        ]
        yield pa.RecordBatch.from_arrays([pa.array(done, pa.binary())], names=["blob"])


def aggregate_blobs(blobs: DataFrame, name: str, fn: TableFn, schema: pl.Schema) -> pl.DataFrame:
    """``fn`` over each packed part of the table ``name`` (:func:`bucket_blobs`; ``schema``,
    its contract's) on the executors, the results concatenated: only ``fn``'s rows (partial
    aggregates) reach the driver.

    Raises
    ------
    SparkJobError
        When the job fails: one line.
    """
    mine = blobs.where(blobs["table"] == name)
    rows = mine.mapInArrow(partial(apply_blobs, fn=fn), "blob binary")
    try:
        done = rows.collect()
    except Exception as e:
        raise SparkJobError(
            f"the Spark job aggregating table {name} failed: {failure_cause(e)}"
        ) from None
    frames = [pl.read_ipc(io.BytesIO(r["blob"])) for r in done]
    return pl.concat(frames) if frames else fn(pl.LazyFrame(schema=schema))


def keep_calls(
    batches: Iterator[pa.RecordBatch], sample: CustomerSample
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` over ``calls``: the calls ``sample``'s customers made or received."""
    touching = sample.calls_expr()
    for batch in batches:
        mask = pl.from_arrow(pa.Table.from_batches([batch])).select(touching).to_series()
        yield batch.filter(mask.to_arrow())


def sample_calls(
    calls: DataFrame, sample: CustomerSample, directory: Path, schema: pl.Schema
) -> pl.DataFrame:
    """The calls ``sample``'s customers made or received (:func:`keep_calls`), kept by the
    executors from ``calls`` (the contract's, as the call graph reads them) and written under
    ``directory`` the first time they are asked for, then read from there.

    Raises
    ------
    SparkJobError
        When the job fails: one line.
    """
    kept = calls.mapInArrow(partial(keep_calls, sample=sample), calls.schema)
    files = _written_once(kept, directory, f"the calls of a sample ({sample.share:g})")
    if not files:
        return pl.DataFrame(schema=schema)
    return pl.read_parquet(files).cast(schema)  # type: ignore[arg-type]
