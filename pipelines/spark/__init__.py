"""The Spark backend: point-in-time profiles, and the stages' per-customer scoring of everyone,
computed on Apache Spark (``engine.backend``); the validation of its inputs is
:mod:`pipelines.spark.validation`.

Importing this package does not import PySpark; the session is opened when first needed (by
the validation, or the first profile of a run that does not validate). A notebook passes its
own session with :func:`pipelines.spark.session.use_session`.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from crm_engine.config import FeaturesConfig, PipelineConfig
from features.point_in_time import TableFn
from features.sample import UNKEYED_TABLES, CustomerSample
from pipelines.spark.session import LazySession, SparkUnavailable, use_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from crm_engine.parts import Mapper, Parts
    from pipelines.spark.influence import SparkCallGraph, SparkContacts

__all__ = ["SparkProfiles", "SparkUnavailable", "use_session"]


class SparkProfiles:
    """The run's profile builder on Spark (a ``ProfileBuilder``).

    The customer-keyed tables are read, cast and packed by bucket once a run and kept on the
    executors (:func:`~pipelines.spark.inputs.bucket_blobs`); the call graph likewise
    (:func:`~pipelines.spark.profile.call_graph`). The cuts a stage expects (:meth:`expect`)
    are computed in one job each: one task per bucket computes every cut
    (:func:`~pipelines.spark.profile.write_profiles`), the call-graph columns of all of them in
    one more, and the executors write both under ``scratch``; a profile asked for is read from
    there (:func:`~pipelines.spark.profile.read_profile`), only its sample's rows, and
    everyone's, the run's spill, a file at a time (:meth:`write`). A stage's per-customer
    scoring of everyone runs on the executors' files too, and only its results come back
    (:meth:`map`); so do the network value's sums over the call graph (:meth:`contacts`).

    Parameters
    ----------
    cfg
        The run's config (``engine.spark``, ``data.dir``, ``data.timezone``).
    session
        The run's session (opened by the validation, or when the first profile is asked
        for).
    scratch
        A directory of the run's staging area for the files the executors write.
    """

    def __init__(self, cfg: PipelineConfig, session: LazySession, scratch: Path) -> None:
        self._cfg = cfg
        self._session = session
        self._scratch = scratch
        self._graph: SparkCallGraph | None = None
        self._blobs: DataFrame | None = None
        self._written: dict[tuple[dt.date, CustomerSample | None], Path] = {}
        self._batches = 0
        self._maps = 0
        self._samples: dict[CustomerSample, Path] = {}

    def _call_graph(self, tables: dict[str, pl.LazyFrame]) -> SparkCallGraph | None:
        from pipelines.spark.profile import call_graph

        if "calls" not in tables:
            return None
        if self._graph is None:
            data_dir = Path(self._cfg.data.dir)
            self._graph = call_graph(
                self._session.get(),
                data_dir,
                tables,
                self._scratch / "callgraph",
                self._cfg.data.timezone,
                self._cfg.engine.spark.buckets,
            )
        return self._graph

    def _bucket_blobs(self, tables: dict[str, pl.LazyFrame]) -> DataFrame:
        from pipelines.spark.inputs import bucket_blobs

        if self._blobs is None:
            blobs = bucket_blobs(
                self._session.get(),
                Path(self._cfg.data.dir),
                tables,
                buckets=self._cfg.engine.spark.buckets,
                timezone=self._cfg.data.timezone,
            )
            self._blobs = blobs.localCheckpoint()
        return self._blobs

    def expect(
        self,
        tables: dict[str, pl.LazyFrame],
        cuts: Sequence[dt.date],
        cfg: FeaturesConfig,
        sample: CustomerSample | None = None,
    ) -> None:
        """Compute the profiles of ``sample`` at ``cuts`` in one job, and their call-graph
        columns in one more: the cuts not computed yet, for ``sample`` or a wider sample (a
        profile is the same row for a customer whichever sample it was built for)."""
        from pipelines.spark.profile import expect_cuts, write_profiles

        todo = sorted({c for c in cuts if self._batch(c, sample) is None})
        if not todo:
            return
        graph = self._call_graph(tables)
        if graph is not None:
            expect_cuts(graph, todo, cfg)
        directory = self._scratch / "profiles" / f"batch-{self._batches:03d}"
        self._batches += 1
        blobs, buckets = self._bucket_blobs(tables), self._cfg.engine.spark.buckets
        write_profiles(blobs, buckets, tables, todo, cfg, sample, directory)
        for cut in todo:
            self._written[(cut, sample)] = directory

    def _batch(
        self, cut: dt.date, sample: CustomerSample | None
    ) -> tuple[Path, CustomerSample | None] | None:
        """Where the profile at ``cut`` of ``sample`` was written, and of which sample: its
        own, or a wider one (None: not written yet)."""
        if (cut, sample) in self._written:
            return self._written[(cut, sample)], sample
        for (written, of), directory in self._written.items():
            if written == cut and sample is not None and sample.within(of):
                return directory, of
        return None

    def _computed(
        self,
        tables: dict[str, pl.LazyFrame],
        cut: dt.date,
        cfg: FeaturesConfig,
        sample: CustomerSample | None,
    ) -> tuple[Path, CustomerSample | None]:
        """:meth:`_batch` of the profile, computed now when it was not expected."""
        self.expect(tables, [cut], cfg, sample)
        found = self._batch(cut, sample)
        if found is None:
            raise RuntimeError(f"the profile at {cut} was not written by its batch")
        return found

    def __call__(
        self,
        tables: dict[str, pl.LazyFrame],
        cut: dt.date,
        features_cfg: FeaturesConfig,
        sample: CustomerSample | None,
    ) -> pl.DataFrame:
        from pipelines.spark.profile import read_profile

        directory, of = self._computed(tables, cut, features_cfg, sample)
        profile = read_profile(directory, tables, cut, features_cfg, self._call_graph(tables))
        return profile if of == sample or sample is None else profile.filter(sample.expr())

    def write(
        self, tables: dict[str, pl.LazyFrame], cut: dt.date, cfg: FeaturesConfig, path: Path
    ) -> int:
        """Everyone's profile at ``cut`` written to ``path`` (Parquet, LZ4, by ``customer_id``)
        a file of the executors' at a time, never whole on the driver
        (:func:`~pipelines.spark.profile.write_profile`); the rows written."""
        from pipelines.spark.profile import write_profile

        directory, _ = self._computed(tables, cut, cfg, None)
        return write_profile(directory, tables, cut, cfg, self._call_graph(tables), path)

    def map(
        self, tables: dict[str, pl.LazyFrame], cut: dt.date, cfg: FeaturesConfig, fn: Mapper
    ) -> Parts:
        """``fn`` over everyone's profile at ``cut`` on the executors, a task per file they
        wrote (:func:`~pipelines.spark.mapping.map_profile`); its results stay there, as
        :class:`~pipelines.spark.mapping.SparkParts`. Without
        ``engine.spark.score_on_executors``, on the driver, a file at a time
        (:func:`~pipelines.spark.mapping.map_here`)."""
        from pipelines.spark.mapping import map_here, map_profile

        directory, _ = self._computed(tables, cut, cfg, None)
        graph = self._call_graph(tables)
        if not self._cfg.engine.spark.score_on_executors:
            return map_here(directory, tables, cut, cfg, graph, fn)
        return map_profile(directory, tables, cut, cfg, graph, fn, self._map_job)

    def parts(
        self,
        tables: dict[str, pl.LazyFrame],
        cut: dt.date,
        cfg: FeaturesConfig,
        columns: Sequence[str] | None = None,
    ) -> Parts:
        """Everyone's profile at ``cut`` as the executors wrote it, ``columns`` of it (None:
        all): a plan per file, finished as :meth:`map` finishes it, for the steps over everyone
        that run there (:class:`~pipelines.spark.mapping.SparkParts`). Without
        ``engine.spark.score_on_executors``, the files read here."""
        from crm_engine.parts import FrameParts
        from pipelines.spark.mapping import SparkParts, file_plans
        from pipelines.spark.profile import profile_scan

        directory, _ = self._computed(tables, cut, cfg, None)
        graph = self._call_graph(tables)
        plans = file_plans(directory, tables, cut, cfg, graph)
        if columns is not None:
            plans = [plan.select(columns) for plan in plans]
        if not plans or not self._cfg.engine.spark.score_on_executors:
            whole = profile_scan(directory, tables, cut, cfg, graph)[0]
            return FrameParts(whole if columns is None else whole.select(columns))
        return SparkParts(tuple(plans), self._map_job)

    def _map_job(self, plans: list[pl.LazyFrame], fn: Mapper, what: str) -> list[Path]:
        """:func:`~pipelines.spark.mapping.map_files` of the run's session, into a directory
        of its own (``mapped/map-<n>``)."""
        from pipelines.spark.mapping import map_files

        out = self._scratch / "mapped" / f"map-{self._maps:03d}"
        self._maps += 1
        return map_files(self._session.get(), plans, fn, out, what)

    def sampled(
        self, tables: dict[str, pl.LazyFrame], sample: CustomerSample
    ) -> dict[str, pl.LazyFrame]:
        """``tables`` restricted to ``sample`` (a ``SampleReader``,
        :func:`features.sample.restrict`), each kept by the executors in a job of its own
        the first time a plan of it is collected, and read from the scratch after: a keyed
        table's rows from the packed buckets holding the sample
        (:func:`~pipelines.spark.inputs.sample_table`), the calls its customers made or
        received from the calls the graph reads (:func:`~pipelines.spark.inputs.sample_calls`).
        """
        from pipelines.spark.inputs import sample_calls, sample_table

        if sample not in self._samples:
            self._samples[sample] = self._scratch / "samples" / f"sample-{len(self._samples):03d}"
        directory = self._samples[sample]
        blobs, buckets = self._bucket_blobs(tables), self._cfg.engine.spark.buckets
        kept: dict[str, pl.LazyFrame] = {}
        for name, frame in tables.items():
            schema = frame.collect_schema()
            if name not in UNKEYED_TABLES:
                read = functools.partial(
                    sample_table, blobs, buckets, sample, name, schema, directory / name
                )
            else:  # calls: the graph's as the executors read them
                graph = self._call_graph(tables)
                assert graph is not None
                read = functools.partial(
                    sample_calls, graph.calls, sample, directory / name, schema
                )
            kept[name] = pl.defer(read, schema=schema)
        return kept

    def aggregate_table(
        self, tables: dict[str, pl.LazyFrame], name: str, fn: TableFn
    ) -> pl.DataFrame:
        """``fn`` over each packed part of the table ``name`` on the executors (a
        ``TableAggregator``, :func:`~pipelines.spark.inputs.aggregate_blobs`): only its rows
        reach the driver."""
        from pipelines.spark.inputs import aggregate_blobs

        if name in UNKEYED_TABLES:  # not packed (the calls): its plan, here
            return fn(tables[name])
        schema = tables[name].collect_schema()
        return aggregate_blobs(self._bucket_blobs(tables), name, fn, schema)

    def contacts(
        self, tables: dict[str, pl.LazyFrame], cut: dt.date, cfg: FeaturesConfig
    ) -> SparkContacts:
        """The call graph at ``cut`` as network value reads it, on the executors
        (:class:`~pipelines.spark.influence.SparkContacts`)."""
        from pipelines.spark.influence import SparkContacts

        graph = self._call_graph(tables)
        if graph is None:
            raise ValueError("no call graph without a calls table")
        return SparkContacts(graph, cut, self._scratch / "contacts")
