"""The customer-keyed input tables on Spark, cast to the contract and packed by bucket once a run.

Every keyed table (all but ``calls``) becomes rows ``(bucket, table, blob)``: a blob is one
Arrow IPC frame of a bucket's rows of a batch, cast to the contract exactly as the local
backend casts them (:func:`pipelines.spark.profile._cast`, Polars) and bucketed as its split
buckets them (:func:`features.sample.bucket_expr`). :func:`bucket_blobs` partitions them by
bucket: a run keeps them on the executors and computes every profile from them
(:func:`pipelines.spark.profile.write_profiles`).

Plain Parquet files (a file, or a directory of parts without hive partitions) are read by the
Python workers themselves, a row group per item (:func:`read_and_pack`): at 1M customers the
six tables were packed in 20 s against 48 s when Spark read them and handed the rows to Python
as Arrow batches (``local[2]``, the same blobs' rows). CSV tables and hive-partitioned
directories (whose partition columns come from the paths) are read by Spark
(:func:`pipelines.spark.profile.read_source`), as the local scan reads them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from crm_engine.io import DataError, TableSource, find_tables
from features.sample import bucket_expr
from pipelines.spark.profile import _cast, read_source

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["BLOB_DDL", "bucket_blobs", "pack_batches", "read_and_pack"]

BLOB_DDL = "bucket long, table string, blob binary"
"""The packed rows' Spark schema."""
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


def read_and_pack(
    batches: Iterator[pa.RecordBatch],
    items: list[tuple[str, str, int]],
    targets: dict[str, pl.Schema],
    timezone: str,
    buckets: int,
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` over item numbers (``id``): item ``i`` is ``(table, file, row group)``,
    read here and packed as :func:`pack_batches` packs Spark's batches."""
    for batch in batches:
        for i in batch.column("id").to_pylist():
            name, path, group = items[i]
            rows = pq.ParquetFile(path).read_row_group(group).combine_chunks()
            yield from pack_batches(rows.to_batches(), name, targets[name], timezone, buckets)


def _plain_parquet(source: TableSource) -> bool:
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
    targets: dict[str, pl.Schema],
    timezone: str,
    buckets: int,
) -> DataFrame:
    """The tables of ``sources`` read and packed by the workers, a row group per item."""
    items = [
        (source.name, str(path), group)
        for source in sources
        for path in source.files()
        for group in range(pq.ParquetFile(path).metadata.num_row_groups)
    ]
    tasks = max(1, min(len(items), ITEMS_PER_CORE * spark.sparkContext.defaultParallelism))
    pack = partial(read_and_pack, items=items, targets=targets, timezone=timezone, buckets=buckets)
    return spark.range(len(items), numPartitions=tasks).mapInArrow(pack, BLOB_DDL)


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
    plain = [sources[n] for n in keyed if _plain_parquet(sources[n])]
    packed = [
        read_source(spark, sources[n]).mapInArrow(
            partial(pack_batches, name=n, target=targets[n], timezone=timezone, buckets=buckets),
            BLOB_DDL,
        )
        for n in keyed
        if sources[n] not in plain
    ]
    if plain:
        packed.append(_by_workers(spark, plain, targets, timezone, buckets))
    blobs = packed[0]
    for other in packed[1:]:
        blobs = blobs.unionByName(other)
    return blobs.repartition(buckets, "bucket")
