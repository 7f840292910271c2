"""The local backend's bucketed pass: the keyed tables split once by customer, profiles built
bucket by bucket (DESIGN §7).

The customer-keyed tables are read once and written as scratch Parquet in the run's staging
directory, one directory per (table, bucket), every row of a customer in the bucket of
:func:`features.sample.bucket_expr`. A profile is then the concatenation of
``features.build_profile`` over the buckets (without the call graph), so the memory of the
aggregations is that of a bucket; a sampled profile reads only the buckets its sample lies in
(:func:`features.sample.buckets_holding`). The call-graph columns need the whole graph: they
are computed once per cut from the run's own ``calls`` and ``customers`` and attached, as the
Spark backend does.

With one bucket nothing is split: the profile is ``features.build_profile`` over the input.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from crm_engine.config import EngineConfig, FeaturesConfig
from crm_engine.io import DataError
from features.sample import UNKEYED_TABLES, CustomerSample, bucket_expr, buckets_holding

__all__ = ["BucketSplit", "bucket_count", "bucketed_profile", "split_tables"]

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

    def tables(self, bucket: int) -> dict[str, pl.LazyFrame]:
        """Every keyed table's rows of ``bucket`` (an empty frame where it has none)."""
        out: dict[str, pl.LazyFrame] = {}
        for name, schema in self.schemas.items():
            part = self.directory / name / f"{_KEY}={bucket}"
            out[name] = (
                pl.scan_parquet(part / "*.parquet", schema=schema, hive_partitioning=False)
                if part.is_dir()
                else pl.LazyFrame(schema=schema)
            )
        return out


def split_tables(tables: dict[str, pl.LazyFrame], directory: Path, buckets: int) -> BucketSplit:
    """Write every customer-keyed table of ``tables`` into ``directory``, split in
    ``buckets`` by customer (one streaming pass per table).

    Raises
    ------
    DataError
        When the scratch cannot be written (a full disk, say): one line naming the table and
        the directory; what was written is removed.
    """
    schemas = {
        name: frame.collect_schema() for name, frame in tables.items() if name not in UNKEYED_TABLES
    }
    for name in schemas:
        target = directory / name
        try:
            tables[name].with_columns(bucket_expr(buckets).alias(_KEY)).sink_parquet(
                pl.PartitionBy(target, key=_KEY, include_key=False), mkdir=True
            )
        except OSError as e:
            shutil.rmtree(directory, ignore_errors=True)
            raise DataError(
                f"splitting {name} into {buckets} buckets under {directory} failed: "
                f"{e.strerror or e}"
            ) from None
    return BucketSplit(directory=directory, buckets=buckets, schemas=schemas)


def bucketed_profile(
    split: BucketSplit,
    tables: dict[str, pl.LazyFrame],
    cut: dt.date,
    cfg: FeaturesConfig,
    sample: CustomerSample | None = None,
    on_bucket: Callable[[int, int], None] | None = None,
) -> pl.DataFrame:
    """The profile at ``cut`` (of ``sample``'s customers) built bucket by bucket; equal to
    ``features.build_profile(tables, cut, cfg, sample)``.

    ``tables`` are the run's own (unsplit) tables: the call graph and the contacts' regions
    and churn dates come from them, computed once and split like the tables. Each bucket's
    part is finished (declared columns, rounding) on its own; the parts are then put in
    ``customer_id`` order a column at a time. ``on_bucket(done, total)`` is called after each
    bucket.
    """
    import features
    from features.influence import attach_influence, influence_scores
    from features.profile import finish_profile

    id_dtype = tables["customers"].collect_schema()["customer_id"]
    expected = features.profile_schema(cfg, frozenset(tables), id_dtype)
    graph: dict[int, pl.DataFrame] | None = None
    empty_graph = pl.DataFrame()
    if "calls" in tables:
        scores = influence_scores(tables["calls"], tables["customers"], cut, cfg).collect(
            engine="streaming"
        )
        empty_graph = scores.clear()
        keyed = scores.with_columns(bucket_expr(split.buckets).alias(_KEY))
        del scores
        graph = {
            int(key[0]): part  # type: ignore[arg-type]
            for key, part in keyed.partition_by(_KEY, as_dict=True, include_key=False).items()
        }
        del keyed
    chosen = buckets_holding(sample, split.buckets)
    parts: list[pl.DataFrame] = []
    for i, bucket in enumerate(chosen):
        part = features.build_profile(split.tables(bucket), cut, cfg, sample)
        if graph is not None:
            part = attach_influence(part, graph.pop(bucket, empty_graph).lazy(), cfg)
        parts.append(finish_profile(part, expected).collect(engine="streaming"))
        if on_bucket is not None:
            on_bucket(i + 1, len(chosen))
    return _sorted_concat(parts, "customer_id")


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
