"""The profiles of one run: built once, shared by the stages, handed over when no later one needs
them; and the two facts about the inputs a run reads once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import polars as pl

from crm_engine.config import FeaturesConfig
from crm_engine.io import WRITE_ROWS, frame_height, in_id_order, map_slices
from crm_engine.parts import FrameParts, Mapper, Parts
from features.point_in_time import TableFn
from features.sample import CustomerSample, restrict
from features.window import DataStart, data_start

if TYPE_CHECKING:
    from churn.network import ContactGraph

__all__ = [
    "ColumnReader",
    "ExpectingBuilder",
    "GraphBuilder",
    "Mapper",
    "MappingBuilder",
    "PartsMap",
    "Profile",
    "ProfileBuilder",
    "ProfileCache",
    "ProfileMap",
    "SampleReader",
    "WritingBuilder",
    "column_reader",
    "local_profile",
]

ProfileBuilder = Callable[
    [dict[str, pl.LazyFrame], dt.date, FeaturesConfig, CustomerSample | None], pl.DataFrame
]
"""Computes the collected profile at a cut: ``(tables, cut, features config, sample)``."""


@runtime_checkable
class WritingBuilder(Protocol):
    """A :data:`ProfileBuilder` that writes everyone's profile at a cut to a Parquet file
    (by ``customer_id``) without holding it whole, and returns the rows written."""

    def write(
        self, tables: dict[str, pl.LazyFrame], cut: dt.date, cfg: FeaturesConfig, path: Path
    ) -> int: ...


@runtime_checkable
class ExpectingBuilder(Protocol):
    """A :data:`ProfileBuilder` that computes several cuts' profiles together (the Spark
    backend: one job for all), told which are coming."""

    def expect(
        self,
        tables: dict[str, pl.LazyFrame],
        cuts: Sequence[dt.date],
        cfg: FeaturesConfig,
        sample: CustomerSample | None = None,
    ) -> None: ...


class ProfileMap(Protocol):
    """Everyone's profile mapped where it lies (:meth:`ProfileCache.map` bound to the run's
    plan, what a stage hands its package): ``fn`` over it, reading ``columns`` (None: all), in
    the profile's row order."""

    def __call__(self, fn: Mapper, columns: Sequence[str] | None = None) -> pl.DataFrame: ...


class PartsMap(Protocol):
    """Everyone's profile mapped where it lies, the results left there
    (:meth:`ProfileCache.map_parts` bound to the run's plan)."""

    def __call__(self, fn: Mapper, columns: Sequence[str] | None = None) -> Parts: ...


@runtime_checkable
class MappingBuilder(Protocol):
    """A :data:`ProfileBuilder` that applies a :data:`Mapper` to everyone's profile at a cut
    where the profile lies (the Spark backend: on the executors), and leaves the results there
    (:class:`~crm_engine.parts.Parts`: the executors' files)."""

    def map(
        self, tables: dict[str, pl.LazyFrame], cut: dt.date, cfg: FeaturesConfig, fn: Mapper
    ) -> Parts: ...

    def parts(
        self,
        tables: dict[str, pl.LazyFrame],
        cut: dt.date,
        cfg: FeaturesConfig,
        columns: Sequence[str] | None = None,
    ) -> Parts: ...


@runtime_checkable
class GraphBuilder(Protocol):
    """A :data:`ProfileBuilder` whose call graph lies where it computed it (the Spark backend:
    on the executors), and gives it as network value reads it."""

    def contacts(
        self, tables: dict[str, pl.LazyFrame], cut: dt.date, cfg: FeaturesConfig
    ) -> ContactGraph: ...


@runtime_checkable
class SampleReader(Protocol):
    """A :data:`ProfileBuilder` that keeps the customer-keyed tables by bucket and reads a
    sample's rows of them there (the local backend's split, the Spark backend's packed
    buckets): ``tables`` restricted as :func:`features.sample.restrict` restricts them."""

    def sampled(
        self, tables: dict[str, pl.LazyFrame], sample: CustomerSample
    ) -> dict[str, pl.LazyFrame]: ...


@runtime_checkable
class TableAggregator(Protocol):
    """A :data:`ProfileBuilder` that keeps the customer-keyed tables where it computes (the
    Spark backend: packed on the executors) and applies a function to each part of one there,
    only the function's rows coming back."""

    def aggregate_table(
        self, tables: dict[str, pl.LazyFrame], name: str, fn: TableFn
    ) -> pl.DataFrame: ...


def local_profile(
    tables: dict[str, pl.LazyFrame],
    cut: dt.date,
    cfg: FeaturesConfig,
    sample: CustomerSample | None = None,
) -> pl.DataFrame:
    """The profile computed by Polars' streaming engine on this machine."""
    import features

    return features.build_profile(tables, cut, cfg, sample).collect(engine="streaming")


@dataclass(eq=False)
class ProfileCache:
    """The collected profiles of one run by ``(cut, sample)``, and its customer count and data
    start, each computed when first asked for.

    The stages share it: the valuation holdout and the churn validation cut often ask for the
    same profile, built once. The profile at ``as_of`` of everyone stays for the whole run:
    in memory, or, with ``spill``, in a file there that each :meth:`get` reads anew, so that
    between the stages that read it nobody holds everyone's profile (at 10M customers 4.3 GB,
    the largest frame of a run, which the churn stage's training and the valuation holdouts
    need no row of). An earlier cut's profile is either handed over (:meth:`take`: the caller
    then holds the only copy) or forgotten with the others of earlier cuts
    (:meth:`release_before`).

    Attributes
    ----------
    tables
        The run's input tables.
    as_of
        The run's date.
    cfg
        The ``[features]`` section the profiles are built with.
    build
        How profiles are computed (default :func:`local_profile`; the local backend's buckets
        and the Spark backend set their own).
    spill
        A scratch directory for the profile at ``as_of`` of everyone (None: kept in memory).
    """

    tables: dict[str, pl.LazyFrame]
    as_of: dt.date
    cfg: FeaturesConfig
    build: ProfileBuilder = local_profile
    spill: Path | None = None
    _profiles: dict[tuple[dt.date, CustomerSample | None], pl.DataFrame] = field(
        default_factory=dict, init=False, repr=False
    )
    _customers: int | None = field(default=None, init=False, repr=False)
    _start: DataStart | None = field(default=None, init=False, repr=False)
    _handed: list[pl.LazyFrame] = field(default_factory=list, init=False, repr=False)
    """The plans :meth:`everyone` handed out (:meth:`map` knows them by identity)."""

    def get(self, cut: dt.date, sample: CustomerSample | None = None) -> pl.DataFrame:
        """The profile at ``cut`` (of ``sample``'s customers), built once and kept (with
        ``spill``, everyone's at ``as_of`` is read from its file, the caller's own copy)."""
        key = (cut, sample)
        if key == (self.as_of, None) and self.spill is not None:
            return self._spilled()
        if key not in self._profiles:
            self._profiles[key] = self._build(cut, sample)
        return self._profiles[key]

    def expect(self, cuts: Sequence[dt.date], sample: CustomerSample | None = None) -> None:
        """Tell the builder which profiles (of ``sample`` at ``cuts``) are about to be asked
        for, so that one that computes several cuts together does it once for them
        (:class:`ExpectingBuilder`: the Spark backend)."""
        if isinstance(self.build, ExpectingBuilder):
            self.build.expect(self.tables, cuts, self.cfg, sample)

    def take(self, cut: dt.date, sample: CustomerSample | None = None) -> pl.DataFrame:
        """The profile of :meth:`get`, handed over: an earlier cut's profile leaves the cache
        (built without being kept when it was not there), so the caller holds the only copy
        and frees it when done. The churn training frames take their cuts: no stage after them
        needs those profiles, and at 1M customers the cuts kept while the next ones were
        built held ~1 GB. The profile at ``as_of`` of everyone stays."""
        key = (cut, sample)
        if key == (self.as_of, None):
            return self.get(cut, sample)
        return self._profiles.pop(key) if key in self._profiles else self._build(cut, sample)

    def everyone(self) -> pl.LazyFrame:
        """The profile at ``as_of`` of everyone as a plan: a scan of its file with ``spill``
        (built first when it is not there), else the frame kept in memory. What the catalog
        holds between the stages: a stage collects the columns it needs when it needs them."""
        if self.spill is None:
            plan = self.get(self.as_of).lazy()
        else:
            path = self._spill_path()
            if not path.exists():
                self._write_spill(path)
            plan = pl.scan_parquet(path)
        self._handed.append(plan)
        return plan

    def map(
        self,
        profile: pl.DataFrame | pl.LazyFrame,
        fn: Mapper,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """``fn`` over ``profile`` a slice at a time, the results concatenated in the profile's
        row order (a row per customer): :meth:`map_parts` read back here, put in the profile's
        order by ``customer_id`` when they come from the executors."""
        mapped = self.map_parts(profile, fn, columns).plan().collect()
        if self._with_builder(profile):  # the executors' rows come in any order
            return in_id_order(profile.lazy().select("customer_id").collect(), mapped)
        return mapped

    def map_parts(
        self,
        profile: pl.DataFrame | pl.LazyFrame,
        fn: Mapper,
        columns: Sequence[str] | None = None,
    ) -> Parts:
        """``fn`` over ``profile`` a slice at a time where it lies, the results left there.
        ``columns``: the ones ``fn`` reads (None: all); here only they are read of a plan.

        Everyone's profile at ``as_of`` as :meth:`everyone` handed it out goes, with a
        :class:`MappingBuilder` (Spark), to where it lies: the executors apply ``fn`` to the
        files they wrote and write its results beside them (the parts' steps over everyone run
        there too). Any other profile is mapped here, into a frame in its row order.
        """
        if self._with_builder(profile):
            assert isinstance(self.build, MappingBuilder)
            return self.build.map(self.tables, self.as_of, self.cfg, fn)
        source = profile if columns is None else profile.select(columns)
        return FrameParts(map_slices(source, fn, WRITE_ROWS))

    def parts(
        self, profile: pl.DataFrame | pl.LazyFrame, columns: Sequence[str] | None = None
    ) -> Parts:
        """``profile``, ``columns`` of it (None: all), as :class:`~crm_engine.parts.Parts` for
        the steps over everyone: where it lies, everyone's profile at ``as_of`` as
        :meth:`everyone` handed it out with a :class:`MappingBuilder` (Spark: the executors'
        files), else the plan or frame itself, read here a slice at a time. Parts that
        :meth:`map_parts` gives of the same profile join these part by part."""
        if self._with_builder(profile):
            assert isinstance(self.build, MappingBuilder)
            return self.build.parts(self.tables, self.as_of, self.cfg, columns)
        return FrameParts(profile if columns is None else profile.select(columns))

    def aggregate(
        self,
        profile: pl.DataFrame | pl.LazyFrame,
        fn: Mapper,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """``fn`` over ``profile`` a slice at a time where it lies, as :meth:`map`, its
        results concatenated in no particular order: for a ``fn`` whose rows are partial
        aggregates of its slice (counts, sums: no row per customer), which the caller adds up.
        With Spark only those rows reach the driver."""
        return self.map_parts(profile, fn, columns).plan().collect()

    def _with_builder(self, profile: pl.DataFrame | pl.LazyFrame) -> bool:
        """Whether ``profile`` is everyone's as :meth:`everyone` handed it out and the
        builder maps it where it lies (:class:`MappingBuilder`)."""
        return isinstance(self.build, MappingBuilder) and any(profile is p for p in self._handed)

    def sampled(self, sample: CustomerSample) -> dict[str, pl.LazyFrame]:
        """The run's tables restricted to ``sample`` (:func:`features.sample.restrict`: the
        customer-keyed ones to its customers, ``calls`` to the calls they made or received):
        read by the builder where it keeps them (:class:`SampleReader`: only the buckets
        holding the sample, and on Spark only its rows reach the driver), else filtered
        here."""
        if isinstance(self.build, SampleReader):
            return self.build.sampled(self.tables, sample)
        return restrict(self.tables, sample)

    def aggregate_table(self, name: str, fn: TableFn) -> pl.DataFrame:
        """``fn`` over the rows of the input table ``name`` where they lie, its results
        concatenated in no particular order (partial aggregates the caller adds up;
        :meth:`features.PointInTime.aggregated`): with a :class:`TableAggregator` (Spark) a
        task per part of the packed table, and only ``fn``'s rows reach the driver; else
        ``fn`` of the table's plan here (Polars streams it)."""
        if isinstance(self.build, TableAggregator):
            return self.build.aggregate_table(self.tables, name, fn)
        return fn(self.tables[name])

    def contacts(self) -> ContactGraph:
        """The undirected call graph at ``as_of`` as network value reads it
        (:class:`churn.network.ContactGraph`): the builder's (:class:`GraphBuilder`, Spark:
        on the executors, only sums reach the driver), else an edge list of the calls read
        here (:func:`features.influence.undirected_edges`)."""
        if isinstance(self.build, GraphBuilder):
            return self.build.contacts(self.tables, self.as_of, self.cfg)
        from churn.network import EdgeList
        from features.influence import undirected_edges

        return EdgeList(undirected_edges(self.tables["calls"], self.as_of))

    def _spill_path(self) -> Path:
        assert self.spill is not None
        return self.spill / f"profile-{self.as_of.isoformat()}.parquet"

    def _spilled(self) -> pl.DataFrame:
        """Everyone's profile at ``as_of``: read from its file, or built and written there
        first. Parquet with LZ4, read at ~1 GB/s; not Arrow IPC, which Polars reads by mapping
        the whole file, so a read briefly held the profile twice."""
        path = self._spill_path()
        if not path.exists():
            self._write_spill(path)
        return pl.read_parquet(path)

    def _write_spill(self, path: Path) -> None:
        """Everyone's profile at ``as_of`` written to ``path``: by a :class:`WritingBuilder`
        (both backends: a bucket or a file at a time, never whole in memory), by another
        builder built and then written."""
        if not self.tables:
            raise ValueError("a ProfileCache builds profiles from the run's tables: none given")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(self.build, WritingBuilder):
            self.build.write(self.tables, self.as_of, self.cfg, path)
            return
        profile = self._build(self.as_of, None)
        profile.write_parquet(path, compression="lz4", row_group_size=WRITE_ROWS)

    def release_before(self, cut: dt.date) -> None:
        """Forget the profiles of the cuts before ``cut`` (training and holdout samples), and
        what the local builder keeps for them (the call graph): the last stage that trains
        calls it once its frames are built, so neither its fits nor scoring hold them too. A
        stage that asks again rebuilds them."""
        for key in [k for k in self._profiles if k[0] < cut]:
            del self._profiles[key]
        from pipelines.buckets import LocalProfiles

        if isinstance(self.build, LocalProfiles) and cut >= self.as_of:
            self.build.release()

    def customers(self) -> int:
        """Rows of the customers table, counted once."""
        if self._customers is None:
            self._customers = int(self.tables["customers"].select(pl.len()).collect().item())
        return self._customers

    def data_start(self) -> DataStart:
        """When the run's transactions begin (:func:`features.data_start`), read once."""
        if self._start is None:
            self._start = data_start(self.tables["transactions"])
        return self._start

    def _build(self, cut: dt.date, sample: CustomerSample | None) -> pl.DataFrame:
        if not self.tables:
            raise ValueError("a ProfileCache builds profiles from the run's tables: none given")
        return self.build(self.tables, cut, self.cfg, sample)


class ColumnReader:
    """A profile read a column at a time: of a plan (the run's profile waits in its scratch,
    see :class:`ProfileCache`) each column is collected when asked for, so drift never holds
    everyone's profile (4.3 GB at 10M customers) beside the run's scores."""

    def __init__(self, profile: pl.DataFrame | pl.LazyFrame) -> None:
        self._profile = profile
        self.schema = profile.collect_schema()
        self.columns = self.schema.names()
        self.height = frame_height(profile)

    def __getitem__(self, name: str) -> pl.Series:
        if isinstance(self._profile, pl.DataFrame):
            return self._profile.get_column(name)
        return self._profile.select(name).collect().to_series()


Profile = pl.DataFrame | pl.LazyFrame | ColumnReader
"""The profile at as_of as drift reads it: in memory, a plan, or a reader of either."""


def column_reader(profile: Profile) -> ColumnReader:
    """``profile`` read a column at a time (itself when it is a reader already)."""
    return profile if isinstance(profile, ColumnReader) else ColumnReader(profile)
