"""The local backend's bucketed pass: the keyed tables split once by customer, profiles built
bucket by bucket (DESIGN §7).

The customer-keyed tables are read once and written as scratch Parquet in the run's staging
directory, one directory per (table, bucket), every row of a customer in the bucket of
:func:`features.sample.bucket_expr`. A profile is then the concatenation of
``features.build_profile`` over the buckets (without the call graph), so the memory of the
aggregations is that of a bucket; a sampled profile reads only the buckets its sample lies in
(:func:`features.sample.buckets_holding`). The call-graph columns need the whole graph: they
are computed once per cut from the run's ``calls`` and ``customers`` and attached, as the
Spark backend does; one :class:`~features.callgraph.CallGraph` read per run serves every cut.
The split writes ``calls`` too, by pair (:func:`features.callgraph.pair_bucket_expr`), so the
graph is summed a part at a time: read whole, the 10M operator's calls took 8 GB to sum.

With one bucket nothing is split: the profile is built from the input tables whole.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from crm_engine.config import EngineConfig, FeaturesConfig
from crm_engine.io import WRITE_ROWS, DataError
from features.callgraph import CallGraph, pair_bucket_expr
from features.sample import (
    UNKEYED_TABLES,
    CustomerSample,
    bucket_expr,
    buckets_holding,
    restrict,
)

__all__ = [
    "BucketSplit",
    "LocalProfiles",
    "bucket_count",
    "bucketed_profile",
    "merge_sorted_parts",
    "split_tables",
    "write_bucketed_profile",
]

_KEY = "_bucket"


def bucket_count(customers: int, engine: EngineConfig) -> int:
    """``engine.buckets``, else one bucket per ``engine.bucket_customers`` customers."""
    if engine.buckets is not None:
        return engine.buckets
    return max(1, math.ceil(customers / engine.bucket_customers))


@dataclass(frozen=True)
class BucketSplit:
    """Where the split tables are and how to read one bucket of them."""

    directory: Path
    buckets: int
    schemas: dict[str, pl.Schema]
    """The customer-keyed tables' schemas."""
    calls: pl.Schema | None = None
    """The schema of ``calls``, split by pair (None: the run has no calls)."""

    def tables(self, bucket: int) -> dict[str, pl.LazyFrame]:
        """Every keyed table's rows of ``bucket`` (an empty frame where it has none)."""
        return {name: self._part(name, schema, bucket) for name, schema in self.schemas.items()}

    def sampled(self, sample: CustomerSample) -> dict[str, pl.LazyFrame]:
        """Every keyed table's rows of ``sample``'s customers, from the buckets holding them
        only (:func:`features.sample.buckets_holding`), and the calls they made or received
        (``calls`` is split by pair: every part is read)."""
        holding = buckets_holding(sample, self.buckets)
        keep = sample.expr()
        tables = {
            name: pl.concat([self._part(name, schema, b) for b in holding]).filter(keep)
            for name, schema in self.schemas.items()
        }
        if self.calls is not None:
            tables["calls"] = pl.concat(self.calls_parts()).filter(sample.calls_expr())
        return tables

    def calls_parts(self) -> list[pl.LazyFrame]:
        """The parts of ``calls``: every call between two people in one of them."""
        if self.calls is None:
            raise ValueError(f"{self.directory} holds no calls")
        return [self._part("calls", self.calls, b) for b in range(self.buckets)]

    def _part(self, name: str, schema: pl.Schema, bucket: int) -> pl.LazyFrame:
        part = self.directory / name / f"{_KEY}={bucket}"
        if not part.is_dir():
            return pl.LazyFrame(schema=schema)
        return pl.scan_parquet(part / "*.parquet", schema=schema, hive_partitioning=False)


def split_tables(tables: dict[str, pl.LazyFrame], directory: Path, buckets: int) -> BucketSplit:
    """Write every table of ``tables`` into ``directory``, split in ``buckets``: the
    customer-keyed ones by customer, ``calls`` by pair (one streaming pass per table).

    Raises
    ------
    DataError
        When the scratch cannot be written (a full disk, say): one line naming the table and
        the directory; what was written is removed.
    """
    schemas = {
        name: frame.collect_schema() for name, frame in tables.items() if name not in UNKEYED_TABLES
    }
    keys = {name: bucket_expr(buckets) for name in schemas}
    if "calls" in tables:
        keys["calls"] = pair_bucket_expr(buckets)
    for name, key in keys.items():
        target = directory / name
        try:
            tables[name].with_columns(key.alias(_KEY)).sink_parquet(
                pl.PartitionBy(target, key=_KEY, include_key=False),
                mkdir=True,
                # scratch read once or twice: lz4 wrote 1M customers' tables in 7.4 s against
                # zstd's 11.5 s, for 1.5x the bytes (0.96 GB)
                compression="lz4",
                statistics=False,
            )
        except OSError as e:
            shutil.rmtree(directory, ignore_errors=True)
            raise DataError(
                f"splitting {name} into {buckets} buckets under {directory} failed: "
                f"{e.strerror or e}"
            ) from None
    calls = tables["calls"].collect_schema() if "calls" in tables else None
    return BucketSplit(directory=directory, buckets=buckets, schemas=schemas, calls=calls)


class LocalProfiles:
    """The local backend's profile builder for one run (a ``ProfileBuilder``).

    Profiles come bucket by bucket from ``split`` (None: the input tables whole), and the
    call-graph columns of every cut from one :class:`~features.callgraph.CallGraph` read at
    the first profile that needs it; :meth:`release` drops it once no earlier cut is asked
    for.
    """

    def __init__(self, as_of: dt.date, split: BucketSplit | None = None) -> None:
        self.as_of = as_of
        self.split = split
        self._graph: CallGraph | None = None

    def graph(self, tables: dict[str, pl.LazyFrame]) -> CallGraph:
        """The run's call graph, read once (a part at a time from the split)."""
        if self._graph is None:
            calls = tables["calls"] if self.split is None else self.split.calls_parts()
            self._graph = CallGraph.read(calls, tables["customers"], self.as_of)
        return self._graph

    def release(self) -> None:
        """Forget the call graph (it is read again if a profile asks)."""
        self._graph = None

    def __call__(
        self,
        tables: dict[str, pl.LazyFrame],
        cut: dt.date,
        cfg: FeaturesConfig,
        sample: CustomerSample | None = None,
    ) -> pl.DataFrame:
        return bucketed_profile(
            self.split, tables, cut, cfg, sample, graph=self._graph_for(tables, cut)
        )

    def write(
        self, tables: dict[str, pl.LazyFrame], cut: dt.date, cfg: FeaturesConfig, path: Path
    ) -> int:
        """Everyone's profile at ``cut`` written to ``path`` (Parquet, LZ4, by ``customer_id``)
        bucket by bucket, never whole in memory (:func:`write_bucketed_profile`); the rows
        written."""
        return write_bucketed_profile(
            self.split, tables, cut, cfg, path, graph=self._graph_for(tables, cut)
        )

    def sampled(
        self, tables: dict[str, pl.LazyFrame], sample: CustomerSample
    ) -> dict[str, pl.LazyFrame]:
        """``tables`` restricted to ``sample`` (a ``SampleReader``,
        :func:`features.sample.restrict`): read from the split, already cast."""
        if self.split is None:
            return restrict(tables, sample)
        return {**tables, **self.split.sampled(sample)}

    def _graph_for(self, tables: dict[str, pl.LazyFrame], cut: dt.date) -> CallGraph | None:
        # the run's graph holds the months up to as_of; a later cut reads its own
        return self.graph(tables) if "calls" in tables and cut <= self.as_of else None


def _finished_parts(
    split: BucketSplit | None,
    tables: dict[str, pl.LazyFrame],
    cut: dt.date,
    cfg: FeaturesConfig,
    sample: CustomerSample | None,
    graph: CallGraph | None,
) -> tuple[pl.Schema, Iterator[pl.DataFrame]]:
    """The profile's declared schema, and its finished part of each bucket ``sample`` lies in,
    computed when asked for (see :func:`bucketed_profile`)."""
    import features
    from features.influence import attach_influence
    from features.profile import finish_profile

    id_dtype = tables["customers"].collect_schema()["customer_id"]
    expected = features.profile_schema(cfg, frozenset(tables), id_dtype)
    buckets = 1 if split is None else split.buckets
    parts_of: dict[int, pl.DataFrame] | None = None
    empty = pl.DataFrame()
    if "calls" in tables:
        graph = graph or CallGraph.read(tables["calls"], tables["customers"], cut)
        scores = graph.scores(cut, cfg)
        if sample is not None:  # PageRank needs the whole graph; the profile, its sample
            scores = scores.filter(sample.expr())
        empty = scores.clear()
        keyed = scores.with_columns(bucket_expr(buckets).alias(_KEY))
        del scores
        parts_of = {
            int(key[0]): part  # type: ignore[arg-type]
            for key, part in keyed.partition_by(_KEY, as_dict=True, include_key=False).items()
        }
        del keyed
    keyed_tables = {name: frame for name, frame in tables.items() if name not in UNKEYED_TABLES}

    def parts() -> Iterator[pl.DataFrame]:
        for bucket in buckets_holding(sample, buckets):
            source = keyed_tables if split is None else split.tables(bucket)
            part = features.build_profile(source, cut, cfg, sample)
            if parts_of is not None:
                part = attach_influence(part, parts_of.pop(bucket, empty).lazy(), cfg)
            yield finish_profile(part, expected).collect(engine="streaming")

    return pl.Schema(expected), parts()


def bucketed_profile(
    split: BucketSplit | None,
    tables: dict[str, pl.LazyFrame],
    cut: dt.date,
    cfg: FeaturesConfig,
    sample: CustomerSample | None = None,
    on_bucket: Callable[[int, int], None] | None = None,
    graph: CallGraph | None = None,
) -> pl.DataFrame:
    """The profile at ``cut`` (of ``sample``'s customers) built bucket by bucket; equal to
    ``features.build_profile(tables, cut, cfg, sample)``.

    ``tables`` are the run's own (unsplit) tables; ``split`` None takes them as one bucket.
    The call-graph columns come from ``graph`` (read from ``tables`` when None), split like
    the tables. Each bucket's part is finished (declared columns, rounding) on its own; the
    parts are then put in ``customer_id`` order a column at a time. ``on_bucket(done,
    total)`` is called after each bucket.
    """
    _, parts = _finished_parts(split, tables, cut, cfg, sample, graph)
    total = len(buckets_holding(sample, 1 if split is None else split.buckets))
    done: list[pl.DataFrame] = []
    for part in parts:
        done.append(part)
        if on_bucket is not None:
            on_bucket(len(done), total)
    return _sorted_concat(done, "customer_id")


def write_bucketed_profile(
    split: BucketSplit | None,
    tables: dict[str, pl.LazyFrame],
    cut: dt.date,
    cfg: FeaturesConfig,
    path: Path,
    graph: CallGraph | None = None,
) -> int:
    """Everyone's profile at ``cut``, the frame :func:`bucketed_profile` gives, written to
    ``path`` without holding it: each bucket's part is sorted and written beside ``path``
    as it is finished, then the parts are merged into ``path`` (:func:`merge_sorted_parts`)
    and removed. Returns the rows written.

    At 10M customers the profile whole took 3 GB (and the allocator kept the pages for the
    stages after it); a bucket's part is 1/K of that.
    """
    schema, parts = _finished_parts(split, tables, cut, cfg, None, graph)
    if split is None or split.buckets == 1:  # one part: it is the file, nothing to merge
        part = next(parts).sort("customer_id")
        part.write_parquet(path, compression="lz4", row_group_size=WRITE_ROWS)
        return part.height
    directory = path.with_name(path.stem + ".parts")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    files: list[Path] = []
    for i, part in enumerate(parts):
        if part.height:
            files.append(directory / f"part-{i:05d}.parquet")
            part.sort("customer_id").write_parquet(
                files[-1], compression="lz4", row_group_size=PART_ROW_GROUP
            )
        del part
    rows = merge_sorted_parts(files, "customer_id", path, schema)
    shutil.rmtree(directory)
    return rows


PART_ROW_GROUP = 16_384
"""Rows per row group of a bucket's sorted part: :func:`merge_sorted_parts` reads a range of
ids from every part, and the row groups' statistics let it decode only the ones that hold
them."""


def merge_sorted_parts(
    files: list[Path], key: str, path: Path, schema: pl.Schema, rows: int | None = None
) -> int:
    """The Parquet ``files``, each sorted by the unique ``key``, merged into one file at
    ``path`` sorted by ``key`` (LZ4, a row group per ``rows`` rows, default
    :data:`crm_engine.io.WRITE_ROWS`): the keys of all files are read, then each slice of
    ``rows`` consecutive keys is gathered from every file by range and written. Holds the keys
    and one slice; ``schema`` is the frame's when there are no files. Returns the rows written.

    (Polars' ``merge_sorted`` chain held the whole 7M-row frame: 6.4 GB against 1.0 here.)
    """
    import pyarrow.parquet as pq

    rows = rows or WRITE_ROWS
    scans = [pl.scan_parquet(f) for f in files]
    keys = (
        pl.concat([s.select(key) for s in scans]).collect().get_column(key).sort()
        if scans
        else pl.Series(key, [], schema[key])
    )
    first = schema.to_frame() if not scans else scans[0].head(0).collect()
    arrow_schema = first.to_arrow().schema
    with pq.ParquetWriter(path, arrow_schema, compression="lz4") as writer:
        if keys.len() == 0:
            writer.write_table(first.to_arrow())
        for start in range(0, keys.len(), rows):
            low, high = keys[start], keys[min(start + rows, keys.len()) - 1]
            # literals: a text key would otherwise be read as a column name
            between = pl.col(key).is_between(pl.lit(low, keys.dtype), pl.lit(high, keys.dtype))
            part = pl.concat([s.filter(between) for s in scans]).collect().sort(key)
            writer.write_table(part.to_arrow().cast(arrow_schema))
    return keys.len()


def _sorted_concat(parts: list[pl.DataFrame], key: str) -> pl.DataFrame:
    """``parts`` (emptied) as one frame sorted by ``key``.

    Built a column at a time, each freed from the parts once gathered: beyond the parts it
    takes about one column, where sorting the concatenated frame takes a second copy of it.
    """
    if len(parts) == 1:
        return parts.pop()
    combined = pl.concat(parts, how="vertical", rechunk=False)
    parts.clear()
    order = combined.get_column(key).arg_sort()
    columns: list[pl.Series] = []
    for name in combined.columns:
        columns.append(combined.get_column(name).gather(order))
        combined = combined.drop(name)
    return pl.DataFrame(columns)
