"""A stage's per-customer scoring of everyone on the executors (``ProfileCache.map``).

A :data:`~pipelines.profiles.Mapper` (the valuation's values, the churn and loyalty models'
predictions) runs where everyone's profile lies: a task per file
:func:`~pipelines.spark.profile.write_profiles` wrote finishes its file as
:func:`~pipelines.spark.profile.read_profile` does (the call-graph columns joined), applies the
broadcast mapper a slice at a time and writes the results beside the profile
(:class:`SparkParts`). The steps over everyone that follow (the tiers' cut points, the report's
counts) are mappers too, of those files (:meth:`SparkParts.aggregate`): only their sums reach
the driver.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from crm_engine.commit import FAULT_ENV
from crm_engine.config import FeaturesConfig
from crm_engine.io import map_slices
from crm_engine.parts import FrameParts, Mapper, Parts
from pipelines.spark.profile import (
    FILE_ROWS,
    SparkJobError,
    collect_file,
    cut_files,
    failure_cause,
    inject_fault,
    profile_scan,
)

if TYPE_CHECKING:
    from pyspark import Broadcast
    from pyspark.sql import SparkSession

    from pipelines.spark.influence import SparkCallGraph

__all__ = ["MapJob", "SparkParts", "file_plans", "map_files", "map_here", "map_profile", "map_task"]


# --- on the executors ------------------------------------------------------------------------


def map_task(
    fn: Broadcast[Mapper], plans: list[pl.LazyFrame], directory: Path, fault: str = ""
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function of :func:`map_profile`: for each index it is handed, collect
    that plan (a file of the profile, finished), apply ``fn`` a slice at a time and write the
    rows to ``directory/part-<index>.parquet`` (through a temporary name: a retried task
    overwrites, never half-writes); yields ``(id, rows)``. ``fault``: see
    :func:`~pipelines.spark.profile.inject_fault` (tests)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        inject_fault(fault)
        mapper = fn.value
        for batch in batches:
            for i in batch.column("id").to_pylist():
                frame = collect_file(plans[i])
                out = map_slices(frame, mapper, FILE_ROWS)
                target = directory / f"part-{i:05d}.parquet"
                temporary = directory / f".part-{i:05d}.{os.getpid()}.tmp"
                out.write_parquet(temporary, compression="lz4")
                os.replace(temporary, target)
                yield pa.RecordBatch.from_pydict({"id": [i], "rows": [out.height]})

    return run


# --- on the driver -----------------------------------------------------------------------------


def file_plans(
    directory: Path,
    tables: dict[str, pl.LazyFrame],
    cut: dt.date,
    cfg: FeaturesConfig,
    graph: SparkCallGraph | None,
) -> list[pl.LazyFrame]:
    """A plan per file of everyone's profile at ``cut`` the executors wrote under
    ``directory``, finished as :func:`~pipelines.spark.profile.read_profile` finishes it
    (none when the cut has no customers)."""
    written = cut_files(directory, cut)
    return [profile_scan(directory, tables, cut, cfg, graph, [f])[0] for f in written]


def map_here(
    directory: Path,
    tables: dict[str, pl.LazyFrame],
    cut: dt.date,
    cfg: FeaturesConfig,
    graph: SparkCallGraph | None,
    fn: Mapper,
) -> FrameParts:
    """What :func:`map_profile` computes, on the driver: each file finished and mapped in
    turn (``engine.spark.score_on_executors`` off), the results held here."""
    plans = file_plans(directory, tables, cut, cfg, graph)
    plans = plans or [profile_scan(directory, tables, cut, cfg, graph)[0]]
    files = (collect_file(plan) for plan in plans)
    return FrameParts(pl.concat(map_slices(frame, fn, FILE_ROWS) for frame in files))


MapJob = Callable[[list[pl.LazyFrame], Mapper, str], list[Path]]
"""A Spark job applying a mapper to plans, a task per plan, its results written to files:
``(plans, fn, what it does)`` to the files (:func:`map_files` with its session and directory)."""


@dataclass(frozen=True)
class SparkParts:
    """:class:`~crm_engine.parts.Parts` on the executors: a plan per part (a file of
    everyone's profile finished, or a file a map's task wrote, or such plans joined part by
    part), each collected by the task that handles it. Aggregated and mapped by a Spark job a
    task per part (``job``), only the aggregates reaching the driver; read by a plan over the
    parts."""

    plans: tuple[pl.LazyFrame, ...]
    job: MapJob
    files: tuple[Path, ...] = ()
    """The files the plans scan, whole (a map's results), else none: what a Spark job reads of
    these parts directly (the sums over contacts of
    :meth:`~pipelines.spark.influence.SparkCallGraph.sum_over_contacts`)."""

    def aggregate(self, fn: Mapper) -> pl.DataFrame:
        return pl.read_parquet(self.job(list(self.plans), fn, "aggregating everyone"))

    def map(self, fn: Mapper) -> SparkParts:
        files = self.job(list(self.plans), fn, "mapping everyone")
        return SparkParts(plans_of(files), self.job, tuple(files))

    def select(self, columns: Sequence[str]) -> SparkParts:
        return SparkParts(tuple(plan.select(columns) for plan in self.plans), self.job)

    def with_columns(self, *columns: pl.Expr) -> SparkParts:
        return SparkParts(tuple(plan.with_columns(*columns) for plan in self.plans), self.job)

    def join(self, other: Parts) -> SparkParts:
        if not isinstance(other, SparkParts) or len(other.plans) != len(self.plans):
            raise TypeError("parts on the executors join parts of the same profile files")
        joined = (
            mine.join(theirs, on="customer_id", how="left", maintain_order="left")
            for mine, theirs in zip(self.plans, other.plans, strict=True)
        )
        return SparkParts(tuple(joined), self.job)

    def plan(self) -> pl.LazyFrame:
        return pl.concat(list(self.plans), how="vertical")

    def pieces(self) -> Sequence[pl.DataFrame | pl.LazyFrame]:
        return self.plans


def map_files(
    spark: SparkSession, plans: list[pl.LazyFrame], fn: Mapper, out: Path, what: str
) -> list[Path]:
    """``fn`` over each of ``plans`` on the executors (``mapInArrow``, a task per plan), a
    slice at a time, the results written under ``out`` (``part-<index>.parquet``, in the
    plans' order); ``what`` the job does, for its error.

    Raises
    ------
    SparkJobError
        When the job fails (a task raised, an executor died): one line.
    """
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    fault = os.environ.get(FAULT_ENV, "")  # read here: the workers' env is not the driver's
    task = map_task(spark.sparkContext.broadcast(fn), plans, out, fault)
    ids = spark.range(len(plans), numPartitions=max(len(plans), 1))
    try:
        done = ids.mapInArrow(task, "id long, rows long").collect()
    except Exception as e:
        raise SparkJobError(f"the Spark job {what} failed: {failure_cause(e)}") from None
    return [out / f"part-{row['id']:05d}.parquet" for row in sorted(done)]


def map_profile(
    directory: Path,
    tables: dict[str, pl.LazyFrame],
    cut: dt.date,
    cfg: FeaturesConfig,
    graph: SparkCallGraph | None,
    fn: Mapper,
    job: MapJob,
) -> Parts:
    """``fn`` over everyone's profile at ``cut`` on the executors, its results left there: a
    task per file :func:`~pipelines.spark.profile.write_profiles` wrote under ``directory``
    (``job``), each finishing its file as :func:`~pipelines.spark.profile.read_profile` does
    (call-graph columns joined) and applying ``fn`` (broadcast) a slice at a time.

    Raises
    ------
    SparkJobError
        When the job fails (a task raised, an executor died): one line.
    """
    plans = file_plans(directory, tables, cut, cfg, graph)
    if not plans:  # no customers at the cut: nothing to send anywhere
        return map_here(directory, tables, cut, cfg, graph, fn)
    files = job(plans, fn, f"scoring the profile at {cut}")
    return SparkParts(plans_of(files), job, tuple(files))


def plans_of(files: list[Path]) -> tuple[pl.LazyFrame, ...]:
    """A scan per file, in their order."""
    return tuple(pl.scan_parquet(f) for f in files)
