"""A frame of everyone that lies where it was computed, and the steps over everyone it allows.

Everyone's profile, and a stage's per-customer results (the values and the segments of
everyone), are :class:`Parts`: in memory or a plan on the local backend (:class:`FrameParts`),
the executors' Parquet files on the Spark backend
(:class:`~pipelines.spark.mapping.SparkParts`). Results mapped from the same profile lie in the
same parts, so they join part by part (:meth:`Parts.join`). A step that needs everyone (the
tiers' cut points, the segment table, the report's counts) is a function applied to each part
where it lies, whose rows the caller adds up (:meth:`Parts.aggregate`), so that with Spark only
those rows reach the driver; the rows themselves are read only by a plan (:meth:`Parts.plan`)
that a consumer collects, the columns it needs.

:func:`exact_quantiles` is such a step: NumPy's default quantiles of a column, exactly, from
a few aggregates of the parts (no part sends its values unless a narrow range holds them). So
is :func:`top_rows`, the top ``k`` rows by a key (whom to explain), given back as an
expression each part evaluates where it lies.

A stage puts its parts in the run's catalog as their plan (:func:`laid_out`); a later stage
gets the parts back from that plan (:func:`parts_of`) to join its own to them part by part.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl

from crm_engine.io import WRITE_ROWS, map_slices

__all__ = [
    "BINS",
    "FrameParts",
    "Mapper",
    "Parts",
    "count_rows",
    "exact_quantiles",
    "exact_sums",
    "gather_rows",
    "group_sums",
    "laid_out",
    "parts_of",
    "top_rows",
    "top_sums",
    "value_range",
]

Mapper = Callable[[pl.DataFrame], pl.DataFrame]
"""A pure function of a slice of a frame of everyone: rows in, rows out (a stage's
per-customer scoring, ``customer_id`` kept; or partial aggregates of the slice). Pickled to the
executors with Spark: a module-level function, or a ``functools.partial`` of one."""


@runtime_checkable
class Parts(Protocol):
    """A frame of everyone in parts, where it was computed."""

    def aggregate(self, fn: Mapper) -> pl.DataFrame:
        """``fn`` over each part (a slice at a time) where it lies, the results concatenated
        in no particular order: partial aggregates the caller adds up."""
        ...

    def map(self, fn: Mapper) -> Parts:
        """``fn`` over each part (a slice at a time) where it lies, the results left there."""
        ...

    def select(self, columns: Sequence[str]) -> Parts:
        """These columns of every part."""
        ...

    def with_columns(self, *columns: pl.Expr) -> Parts:
        """Every part with these columns (expressions of a part's columns) added or replaced,
        computed when a part is read (no job of its own)."""
        ...

    def join(self, other: Parts) -> Parts:
        """The columns of ``other`` beside these, by ``customer_id``, part by part: both are
        of the same customers in the same parts (mapped from the same profile)."""
        ...

    def plan(self) -> pl.LazyFrame:
        """Every row, as a plan (in no particular order across parts): what a consumer
        collects, the columns it needs."""
        ...

    def pieces(self) -> Sequence[pl.DataFrame | pl.LazyFrame]:
        """Every part's rows on its own, a frame or a plan each, in the parts' order: what a
        writer reads one after another (:func:`crm_engine.io.write_parquet`)."""
        ...


@dataclass(frozen=True)
class FrameParts:
    """:class:`Parts` here: one frame, or a plan (the run's profile waiting in its scratch),
    :data:`~crm_engine.io.WRITE_ROWS` rows at a time (the local backend)."""

    frame: pl.DataFrame | pl.LazyFrame

    def aggregate(self, fn: Mapper) -> pl.DataFrame:
        return map_slices(self.frame, fn, WRITE_ROWS)

    def map(self, fn: Mapper) -> FrameParts:
        return FrameParts(map_slices(self.frame, fn, WRITE_ROWS))

    def select(self, columns: Sequence[str]) -> FrameParts:
        return FrameParts(self.frame.select(columns))

    def with_columns(self, *columns: pl.Expr) -> FrameParts:
        return FrameParts(self.frame.with_columns(*columns))

    def join(self, other: Parts) -> FrameParts:
        """Side by side when both hold the same customers in the same order (a frame mapped
        from this profile), else joined: a plan either way, read a slice at a time (joined,
        each slice joins anew: for small frames)."""
        if not isinstance(other, FrameParts):
            raise TypeError(f"parts here join parts here, not {type(other).__name__}")
        mine, theirs = self.frame.lazy(), other.frame.lazy()
        ids = [f.select("customer_id").collect().to_series() for f in (mine, theirs)]
        if ids[0].equals(ids[1]):
            joined = pl.concat([mine, theirs.drop("customer_id")], how="horizontal")
        else:
            joined = mine.join(theirs, on="customer_id", how="left", maintain_order="left")
        return FrameParts(joined)  # a plan: a slice at a time, nothing copied whole

    def plan(self) -> pl.LazyFrame:
        return self.frame.lazy()

    def pieces(self) -> Sequence[pl.DataFrame | pl.LazyFrame]:
        return (self.frame,)


_LAID_OUT: dict[int, tuple[weakref.ref[pl.LazyFrame], Parts]] = {}


def laid_out(parts: Parts) -> pl.LazyFrame:
    """``parts.plan()``, remembered as the plan of ``parts``: what a stage puts in the run's
    catalog (a later stage reads the columns it needs of it), and from which a later stage
    gets the parts back (:func:`parts_of`) to join its own to them where they lie."""
    plan = parts.plan()
    key = id(plan)
    _LAID_OUT[key] = (weakref.ref(plan, lambda _: _LAID_OUT.pop(key, None)), parts)
    return plan


def parts_of(frame: pl.DataFrame | pl.LazyFrame) -> Parts:
    """The parts ``frame`` is the plan of (:func:`laid_out`), else the frame itself, here
    (:class:`FrameParts`)."""
    entry = _LAID_OUT.get(id(frame))
    if entry is not None and entry[0]() is frame:
        return entry[1]
    return FrameParts(frame)


def _reading(parts: Parts, *reads: str | pl.Expr) -> Parts:
    """``parts``, only the columns ``reads`` (names, or expressions of a part's columns) read:
    what a step over everyone asks of each part, so that a part that is a plan (a scan, the
    stages' results joined part by part) reads those columns alone. ``parts`` itself when
    they read none (a literal)."""
    names: dict[str, None] = {}
    for read in reads:
        for name in [read] if isinstance(read, str) else read.meta.root_names():
            names[name] = None
    return parts.select(list(names)) if names else parts


def _chosen(frame: pl.DataFrame, chosen: pl.Expr, columns: Sequence[str]) -> pl.DataFrame:
    """The rows of a slice ``chosen`` holds for, ``columns`` of them."""
    return frame.filter(chosen).select(columns)


def gather_rows(parts: Parts, chosen: pl.Expr, columns: Sequence[str]) -> pl.DataFrame:
    """The rows of every part ``chosen`` (a boolean expression of a part's columns, such as
    :func:`top_rows` gives) holds for, ``columns`` of them, here: for a bounded few (whom to
    explain, the points of a picture), in no particular order."""
    return _reading(parts, chosen, *columns).aggregate(
        functools.partial(_chosen, chosen=chosen, columns=list(columns))
    )


def _group_sums(
    frame: pl.DataFrame, by: Sequence[pl.Expr], sums: Sequence[pl.Expr]
) -> pl.DataFrame:
    """A slice's rows ``n`` and sums of ``sums`` per group of ``by``."""
    return frame.group_by(by).agg(pl.len().cast(pl.Int64).alias("n"), *(e.sum() for e in sums))


def group_sums(parts: Parts, by: Sequence[pl.Expr], sums: Sequence[pl.Expr] = ()) -> pl.DataFrame:
    """Per group of ``by`` (named expressions of a part's columns), the rows (``n``) and the
    sum of each of ``sums`` (named expressions; nulls count as nothing) over every part, in no
    particular order: one aggregate, each part's partial sums added up here (a report's
    counts by category; the floats' last bits may depend on the split)."""
    found = _reading(parts, *by, *sums).aggregate(
        functools.partial(_group_sums, by=list(by), sums=list(sums))
    )
    names = [e.meta.output_name() for e in by]
    return found.group_by(names).agg(
        pl.col("n").sum(), *(pl.col(e.meta.output_name()).sum() for e in sums)
    )


# --- sums from aggregates -------------------------------------------------------------------


def _sum_pair(values: pl.Series) -> tuple[float, float]:
    """A slice's sum of ``values`` (nulls left out) as two floats whose sum is the exact sum to
    about 106 bits: the exactly rounded sum, and the exactly rounded rest."""
    array = values.drop_nulls().cast(pl.Float64).to_numpy()
    total = math.fsum(array)
    if not math.isfinite(total):
        return total, 0.0
    return total, math.fsum([*array.tolist(), -total])


def _sums(frame: pl.DataFrame, columns: Sequence[pl.Expr]) -> pl.DataFrame:
    """Per expression ``i`` of ``columns``, a slice's :func:`_sum_pair`: ``s<i>``, ``r<i>``."""
    values = frame.select(e.alias(f"c{i}") for i, e in enumerate(columns))
    pairs = {i: _sum_pair(values.get_column(f"c{i}")) for i in range(len(columns))}
    return pl.DataFrame(
        {name: [pair[j]] for i, pair in pairs.items() for j, name in enumerate((f"s{i}", f"r{i}"))},
        schema={f"{c}{i}": pl.Float64 for i in range(len(columns)) for c in "sr"},
    )


def exact_sums(parts: Parts, *columns: str | pl.Expr) -> list[float]:
    """The sum of each of ``columns`` (a name, or an expression of a part's columns; nulls
    left out) over every part, exactly rounded: one aggregate, each part sending its sum as
    two floats (:func:`math.fsum` and its rest), the driver ``fsum`` of them all. The same
    in whatever parts and row order the customers come (the money totals of the report must
    not move with the backend), but for a rest below 2**-106 of a part's sum."""
    exprs = [pl.col(c) if isinstance(c, str) else c for c in columns]
    partial = _reading(parts, *exprs).aggregate(functools.partial(_sums, columns=exprs))
    return [
        math.fsum([*partial.get_column(f"s{i}").to_list(), *partial.get_column(f"r{i}").to_list()])
        for i in range(len(exprs))
    ]


# --- exact quantiles from aggregates ----------------------------------------------------------

BINS = 1024
"""Bins of a range per pass of :func:`exact_quantiles`: each pass narrows the range holding an
order statistic to one bin's values."""

GATHER_AT = 20_000
"""Values of a range below which :func:`exact_quantiles` gathers them instead of binning again."""

MAX_PASSES = 40


def _finite(column: str | pl.Expr) -> pl.Expr:
    """The finite values of ``column`` (a name or an expression of a slice) as ``value``."""
    value = (pl.col(column) if isinstance(column, str) else column).cast(pl.Float64)
    return value.filter(value.is_finite()).alias("value")


def _extent(frame: pl.DataFrame, column: str | pl.Expr) -> pl.DataFrame:
    """The finite values of ``column`` in a slice: how many, the least and the largest."""
    values = frame.select(_finite(column))
    return values.select(
        pl.len().cast(pl.Int64).alias("n"),
        pl.col("value").min().alias("low"),
        pl.col("value").max().alias("high"),
    )


def value_range(parts: Parts, column: str | pl.Expr) -> tuple[int, float, float] | None:
    """How many finite values ``column`` (a name or an expression of a part's columns) holds
    over every part, and the least and the largest (one aggregate); None without one."""
    extent = _reading(parts, column).aggregate(functools.partial(_extent, column=column))
    n = int(extent.get_column("n").sum())
    if n == 0:
        return None
    return n, float(extent.get_column("low").min()), float(extent.get_column("high").max())


def _bin_of(low: float, high: float) -> pl.Expr:
    """The bin of a value of ``[low, high]``: a function of the value alone, the same in every
    part, and non-decreasing in it (so the bins split the sorted values in runs)."""
    position = (pl.col("value") - low) / (high - low) * BINS
    return position.floor().clip(0, BINS - 1).cast(pl.Int64)


_HISTOGRAM = pl.Schema(
    {"range": pl.Int64, "bin": pl.Int64, "n": pl.Int64, "low": pl.Float64, "high": pl.Float64}
)


def _histogram(
    frame: pl.DataFrame, column: str | pl.Expr, ranges: Sequence[tuple[float, float]]
) -> pl.DataFrame:
    """Per range ``i`` of ``ranges`` (``low < high``), the slice's finite values within it by
    bin: ``range, bin, n, low, high`` (the count, least and largest value of the bin)."""
    values = frame.select(_finite(column))
    out = [
        values.filter(pl.col("value").is_between(low, high))
        .group_by(_bin_of(low, high).alias("bin"))
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("value").min().alias("low"),
            pl.col("value").max().alias("high"),
        )
        .select(pl.lit(i, pl.Int64).alias("range"), "bin", "n", "low", "high")
        for i, (low, high) in enumerate(ranges)
    ]
    return pl.concat(out) if out else pl.DataFrame(schema=_HISTOGRAM)


def _within(
    frame: pl.DataFrame, column: str | pl.Expr, ranges: Sequence[tuple[float, float]]
) -> pl.DataFrame:
    """Per range ``i`` of ``ranges``, the slice's values within it: ``range, value``."""
    values = frame.select(_finite(column))
    out = [
        values.filter(pl.col("value").is_between(low, high)).select(
            pl.lit(i, pl.Int64).alias("range"), "value"
        )
        for i, (low, high) in enumerate(ranges)
    ]
    return pl.concat(out) if out else pl.DataFrame(schema={"range": pl.Int64, "value": pl.Float64})


@dataclass
class _Search:
    """Where the order statistic of 0-based ``rank`` is: among the ``n`` values of
    ``[low, high]``, above ``below`` smaller ones."""

    rank: int
    low: float
    high: float
    below: int
    n: int
    value: float | None = None


def _order_statistics(
    parts: Parts, column: str | pl.Expr, ranks: Sequence[int], n: int, low: float, high: float
) -> dict[int, float]:
    """The values of ``column`` at 0-based ``ranks`` of its ``n`` finite values sorted (in
    ``[low, high]``): each pass bins the range holding a rank (:data:`BINS`) and keeps its bin,
    until the range holds one value repeated or few enough to gather."""
    parts = _reading(parts, column)  # every pass reads that column alone
    searches = [_Search(r, low, high, 0, n) for r in sorted(set(ranks))]
    for _ in range(MAX_PASSES):
        for s in searches:
            if s.value is None and s.low == s.high:
                s.value = s.low
        open_ = [s for s in searches if s.value is None]
        gathering = sorted({(s.low, s.high) for s in open_ if s.n <= GATHER_AT})
        if gathering:
            found = parts.aggregate(functools.partial(_within, column=column, ranges=gathering))
            for s in open_:
                if (s.low, s.high) in gathering:
                    i = gathering.index((s.low, s.high))
                    values = found.filter(pl.col("range") == i).get_column("value").sort()
                    s.value = float(values[s.rank - s.below])
        binning = sorted({(s.low, s.high) for s in open_ if s.value is None})
        if not binning:
            return {s.rank: float(s.value) for s in searches if s.value is not None}
        bins = (
            parts.aggregate(functools.partial(_histogram, column=column, ranges=binning))
            .group_by("range", "bin")
            .agg(pl.col("n").sum(), pl.col("low").min(), pl.col("high").max())
            .sort("range", "bin")
        )
        for s in open_:
            if s.value is not None:
                continue
            below = s.below
            i = binning.index((s.low, s.high))
            for row in bins.filter(pl.col("range") == i).iter_rows(named=True):
                if s.rank < below + row["n"]:
                    s.low, s.high, s.below, s.n = row["low"], row["high"], below, row["n"]
                    break
                below += row["n"]
            else:
                raise RuntimeError(f"rank {s.rank} of {column} is outside its range")
    raise RuntimeError(f"the quantiles of {column} did not narrow in {MAX_PASSES} passes")


def _lerp(a: float, b: float, t: float) -> float:
    """NumPy's linear interpolation of ``a`` and ``b`` (``numpy.quantile``'s, bit for bit)."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def exact_quantiles(
    parts: Parts, column: str | pl.Expr, quantiles: Sequence[float]
) -> list[float] | None:
    """``numpy.quantile`` of ``column``'s finite values (a column's name, or an expression of
    a part's columns) over every part (its default, linear
    method), exactly, from aggregates of the parts: their extent, then a histogram per pass of
    the ranges holding the order statistics needed, until a range holds few enough values to
    send them (:data:`GATHER_AT`). None without a finite value.

    With Spark, ``parts.aggregate`` is a job over the executors' files, a few a call, and the
    driver holds bins, never the column (at 30M customers 240 MB of CLV on one machine);
    Spark's own exact ``percentile`` gathers every distinct value on one executor."""
    found = value_range(parts, column)
    if found is None:
        return None
    n, low, high = found
    positions = [(n - 1) * float(q) for q in quantiles]  # NumPy's virtual index, linear
    ranks = [r for p in positions for r in (math.floor(p), min(math.floor(p) + 1, n - 1))]
    at = _order_statistics(parts, column, ranks, n, low, high)
    out = []
    for p in positions:
        before = math.floor(p)
        out.append(_lerp(at[before], at[min(before + 1, n - 1)], p - before))
    return out


def _sums_by_bin(
    frame: pl.DataFrame, column: str | pl.Expr, edges: Sequence[float]
) -> pl.DataFrame:
    """A slice's finite values of ``column`` by bin of ``edges`` (ascending): ``bin`` (how many
    edges lie below the value), ``n`` and the bin's sum as two floats (:func:`_sum_pair`)."""
    values = frame.select(_finite(column)).get_column("value").to_numpy()
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    order = np.argsort(bins, kind="stable")
    found, starts = np.unique(bins[order], return_index=True)
    rows = []
    for b, chunk in zip(found, np.split(values[order], starts[1:]), strict=True):
        s, r = _sum_pair(pl.Series(chunk))
        rows.append((int(b), int(chunk.size), s, r))
    schema = {"bin": pl.Int64, "n": pl.Int64, "s": pl.Float64, "r": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def top_sums(parts: Parts, column: str | pl.Expr, ks: Sequence[int]) -> list[float]:
    """For each ``k`` of ``ks``, the sum of the ``k`` largest finite values of ``column`` over
    every part (all of them when ``k`` is their count or more, 0 for ``k`` <= 0), exactly
    rounded but for the ties at the ``k``-th, from aggregates: the ``k``-th largest values
    (:func:`exact_quantiles`' order statistics), then one aggregate of every part's values
    summed by the bins between them (:func:`exact_sums`' two floats a bin)."""
    n, low, high = value_range(parts, column) or (0, 0.0, 0.0)
    inside = sorted({k for k in ks if 0 < k < n})
    if not inside:
        return [0.0 if k <= 0 or n == 0 else _total(parts, column) for k in ks]
    at = _order_statistics(parts, column, [n - k for k in inside], n, low, high)
    edges = sorted(set(at.values()))
    binned = _reading(parts, column).aggregate(
        functools.partial(_sums_by_bin, column=column, edges=edges)
    )
    out = []
    for k in ks:
        if k <= 0 or k >= n:
            out.append(0.0 if k <= 0 else _total(parts, column, binned))
            continue
        t = at[n - k]
        above = binned.filter(pl.col("bin") > edges.index(t))
        terms = [*above.get_column("s").to_list(), *above.get_column("r").to_list()]
        out.append(math.fsum([*terms, (k - int(above.get_column("n").sum())) * t]))
    return out


def _total(parts: Parts, column: str | pl.Expr, binned: pl.DataFrame | None = None) -> float:
    """Every finite value of ``column`` summed (:func:`top_sums` of everyone)."""
    if binned is None:
        binned = _reading(parts, column).aggregate(
            functools.partial(_sums_by_bin, column=column, edges=[])
        )
    return math.fsum([*binned.get_column("s").to_list(), *binned.get_column("r").to_list()])


# --- the top rows by a key, from aggregates ---------------------------------------------------

TIE_SEED = 0x5EED
"""Seed of the hash of ``customer_id`` that breaks ties in :func:`top_rows`."""


def _tie_key() -> pl.Expr:
    """A part's rows' tie-breaker: 53 bits of a hash of ``customer_id``, a float exactly."""
    return (pl.col("customer_id").hash(seed=TIE_SEED) // 2048).cast(pl.Float64)


def _counts(frame: pl.DataFrame, conditions: Sequence[pl.Expr]) -> pl.DataFrame:
    """Rows of a slice where each of ``conditions`` holds: a column ``n<i>`` per condition."""
    names = [f"n{i}" for i in range(len(conditions))]
    flags = frame.with_columns(  # broadcast: a literal condition holds for every row
        cond.fill_null(False).alias(name) for name, cond in zip(names, conditions, strict=True)
    )
    return flags.select(pl.col(name).sum().cast(pl.Int64) for name in names)


def count_rows(parts: Parts, *conditions: pl.Expr) -> list[int]:
    """How many rows of ``parts`` each of ``conditions`` (boolean expressions of a part's
    columns, null as false) holds for: one aggregate."""
    sums = (
        _reading(parts, *conditions)
        .aggregate(functools.partial(_counts, conditions=conditions))
        .sum()
    )
    return [int(sums.item(0, i) or 0) for i in range(len(conditions))]


def _extent_among(frame: pl.DataFrame, among: pl.Expr, value: pl.Expr) -> pl.DataFrame:
    """:func:`_extent` of ``value`` with ``rows``: of a slice, the rows ``among`` holds for."""
    rows = frame.with_columns(among.fill_null(False).alias("among")).get_column("among").sum()
    return _extent(frame, value).with_columns(pl.lit(rows, dtype=pl.Int64).alias("rows"))


def _first(
    parts: Parts, value: pl.Expr, k: int, extent: pl.DataFrame, broken: bool = False
) -> pl.Expr:
    """Whether a row is among the ``k`` rows with a finite ``value`` whose value is largest
    (``value``'s sign flipped by the caller for the least), ties at the ``k``-th broken by
    :func:`_tie_key`, least first; ``extent`` is ``value``'s (:func:`_extent` of each part).
    ``broken``: ``value`` is the tie key already (two customers with the same 53 bits of hash
    at the ``k``-th are both kept)."""
    finite = value.is_finite().fill_null(False)
    n = int(extent.get_column("n").sum())
    if k <= 0:
        return pl.lit(False)
    if k >= n:
        return finite
    low, high = float(extent.get_column("low").min()), float(extent.get_column("high").max())
    t = _order_statistics(parts, value, [n - k], n, low, high)[n - k]
    above, ties = finite & (value > t), finite & (value == t)
    (m_above, m_ties) = count_rows(parts, above, ties)
    need = k - m_above
    if need >= m_ties or broken:
        return above | ties
    tie = pl.when(ties).then(-_tie_key())
    tied = _reading(parts, tie).aggregate(functools.partial(_extent, column=tie))
    return above | _first(parts, tie, need, tied, broken=True)


def top_rows(parts: Parts, key: str | pl.Expr, k: int, among: pl.Expr | None = None) -> pl.Expr:
    """Whether a part's row is among the ``k`` rows of ``among`` (None: every row) with the
    largest ``key``: a boolean expression of a part's columns (``customer_id`` and those of
    ``key`` and ``among``) that every part evaluates where it lies, from a few aggregates of
    the parts (:func:`exact_quantiles`' order statistics), never a sort of everyone.

    A null or non-finite ``key`` ranks below every finite one. Ties are broken by a hash of
    ``customer_id`` (:func:`_tie_key`, least first), the same in every part and on every
    backend: the same rows are chosen however the customers are split in parts. All of
    ``among`` when it holds ``k`` rows or fewer."""
    value = (pl.col(key) if isinstance(key, str) else key).cast(pl.Float64)
    chosen = pl.lit(True) if among is None else among.fill_null(False)
    value = pl.when(chosen).then(value)
    extent = _reading(parts, chosen, value).aggregate(
        functools.partial(_extent_among, among=chosen, value=value)
    )
    n_among, n_finite = int(extent.get_column("rows").sum()), int(extent.get_column("n").sum())
    if k >= n_among:
        return chosen
    if k <= n_finite:
        return _first(parts, value, k, extent)
    finite = chosen & value.is_finite().fill_null(False)
    unranked = pl.when(chosen & ~finite).then(-_tie_key())
    rest = _reading(parts, unranked).aggregate(functools.partial(_extent, column=unranked))
    return finite | _first(parts, unranked, k - n_finite, rest, broken=True)
