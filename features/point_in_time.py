"""One run's point-in-time facts, in one object: the date, the tables, the profiles, the sample."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl

from crm_engine.config import FeaturesConfig
from features.profile import ProfileAt, build_profile
from features.sample import CustomerSample, restrict
from features.window import DataStart, data_start

__all__ = ["PointInTime", "TableFn"]

TableFn = Callable[[pl.LazyFrame], pl.DataFrame]
"""A function of a table's rows (a plan of them) to rows that add up across parts."""


def _nothing_to_release() -> None:
    return None


def _nothing_expected(cuts: Sequence[dt.date], sample: CustomerSample | None) -> None:
    return None


@dataclass(frozen=True, eq=False)
class PointInTime:
    """What a model learns from and scores at, handed from the pipeline to a package in one
    piece instead of a list of positional arguments.

    Attributes
    ----------
    as_of
        First day not observed: features see only rows before it, labels look forward from it.
    tables
        The run's input tables (``crm_engine.io.load_tables``); ``customers`` and
        ``transactions`` are always there.
    profile_at
        The collected profile at a cut, of a sample's customers (the pipeline's per-run cache
        hands out its profiles, so a cut two stages need is built once).
    start
        When the transactions begin (:func:`features.data_start`, read once a run).
    sample
        The customers a model that works on a bounded share learns and validates on (None:
        everyone); what is scored at ``as_of`` is always everyone.
    expect
        Called by a consumer with the cuts (and the sample) it is about to ask profiles of,
        before the first: a backend that computes several cuts together (Spark: one job for
        all) then does it once for them. Does nothing by default.
    release
        Called by the consumer once it has built every frame it needs from earlier cuts: the
        pipeline then frees their profiles (see ``pipelines.profiles.ProfileCache``). Does
        nothing by default.
    n_customers
        Rows of the customers table, when the pipeline has counted them (None: counted by
        :meth:`customer_count` when asked for).
    read_sample
        How the pipeline reads a sample's rows of the tables (``ProfileCache.sampled``: only
        where they lie); None: :func:`features.sample.restrict` of ``tables``. See
        :meth:`sample_tables`.
    aggregate_table
        How the pipeline applies a function to a table's rows where they lie
        (``ProfileCache.aggregate_table``: on Spark the executors); None: to its plan here.
        See :meth:`aggregated`.
    """

    as_of: dt.date
    tables: dict[str, pl.LazyFrame]
    profile_at: ProfileAt
    start: DataStart
    sample: CustomerSample | None = None
    release: Callable[[], None] = _nothing_to_release
    expect: Callable[[Sequence[dt.date], CustomerSample | None], None] = _nothing_expected
    n_customers: int | None = None
    read_sample: Callable[[CustomerSample], dict[str, pl.LazyFrame]] | None = None
    aggregate_table: Callable[[str, TableFn], pl.DataFrame] | None = None

    def aggregated(self, name: str, fn: TableFn) -> pl.DataFrame:
        """``fn`` over the rows of table ``name``, a part at a time where they lie, its
        results concatenated in no particular order: for an ``fn`` whose rows are partial
        aggregates of its part (counts by a key, no row per customer), which the caller adds
        up. Without the pipeline's ``aggregate_table``, ``fn`` of the whole table's plan (Polars
        streams it)."""
        if self.aggregate_table is not None:
            return self.aggregate_table(name, fn)
        return fn(self.tables[name])

    def sample_tables(self) -> dict[str, pl.LazyFrame]:
        """``tables`` restricted to ``sample`` (:func:`features.sample.restrict`: its
        customers' rows, and the calls they made or received; everything without a sample):
        what a fit on the sample reads, its holdout's purchases and its labels. The pipeline
        reads them where they lie (the local backend's buckets that hold the sample; on Spark
        the executors, and only the sample's rows reach the driver) instead of filtering
        whole tables here."""
        if self.sample is None:
            return self.tables
        if self.read_sample is not None:
            return self.read_sample(self.sample)
        return restrict(self.tables, self.sample)

    def customer_count(self) -> int:
        """Rows of the customers table (what a model bounds its own sample by)."""
        if self.n_customers is not None:
            return self.n_customers
        return int(self.tables["customers"].select(pl.len()).collect().item())

    @classmethod
    def of(
        cls,
        tables: dict[str, pl.LazyFrame],
        as_of: dt.date,
        features: FeaturesConfig | None = None,
        sample: CustomerSample | None = None,
    ) -> PointInTime:
        """The facts of ``tables`` at ``as_of`` outside a pipeline run: each profile built from
        the tables when asked for (with ``features``, default config), nothing cached, and the
        data's start read now."""

        def profile_at(cut: dt.date, of: CustomerSample | None = None) -> pl.DataFrame:
            return build_profile(tables, cut, features, of).collect()

        return cls(as_of, tables, profile_at, data_start(tables["transactions"]), sample)
