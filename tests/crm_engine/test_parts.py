"""Exact quantiles of a frame of everyone in parts, from aggregates where the parts lie."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from crm_engine import parts as parts_module
from crm_engine.io import write_parquet
from crm_engine.parts import GATHER_AT, FrameParts, Mapper, exact_quantiles
from crm_engine.scores import read_scores_metadata

QUANTILES = [0.0, 0.25, 0.5, 0.8, 0.95, 0.999, 1.0]


@dataclass(frozen=True)
class Counted(FrameParts):
    """Parts in memory that record how many rows each aggregate sent back."""

    sent: list[int] = field(default_factory=list)

    def aggregate(self, fn: Mapper) -> pl.DataFrame:
        out = super().aggregate(fn)
        self.sent.append(out.height)
        return out

    def select(self, columns: Sequence[str]) -> Counted:
        return Counted(self.frame.select(columns), self.sent)  # the steps read what they need


def _columns() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "one value": np.array([3.5]),
        "two values": np.array([1.0, -2.0]),
        "normal": rng.normal(size=1_001),
        "all zero": np.zeros(200_000),
        "mostly zero, heavy tail": np.r_[np.zeros(600_000), rng.lognormal(4, 3, 400_000)],
        "few distinct": rng.integers(0, 4, 300_000).astype(float),
        "tiny spread": 1e6 + rng.normal(scale=1e-6, size=150_000),
        "negative and positive": rng.standard_t(2, 250_000) * 1e4,
    }


@pytest.mark.parametrize("name", list(_columns()))
def test_quantiles_from_aggregates_are_numpy_s_bit_for_bit(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exact values ``numpy.quantile`` gives (its linear default), from parts of 60,000
    rows, while no aggregate sends back more than a few bins or a narrow range's values: a
    large column is never gathered whole."""
    monkeypatch.setattr(parts_module, "WRITE_ROWS", 60_000)
    values = _columns()[name]
    parts = Counted(pl.DataFrame({"clv": values}).sample(fraction=1.0, shuffle=True, seed=1))
    got = exact_quantiles(parts, "clv", QUANTILES)
    assert got == [float(v) for v in np.quantile(values, QUANTILES)]
    if values.size > 10 * GATHER_AT:
        assert max(parts.sent) < values.size / 5, parts.sent
    assert len(parts.sent) <= 10, parts.sent  # the extent, passes of bins, the gathering


def test_nulls_and_non_finite_values_are_not_counted() -> None:
    frame = pl.DataFrame({"clv": [1.0, None, 2.0, float("nan"), 3.0, float("inf")]})
    assert exact_quantiles(FrameParts(frame), "clv", [0.5, 1.0]) == [2.0, 3.0]
    empty = pl.DataFrame({"clv": [None, float("nan")]}, schema={"clv": pl.Float64})
    assert exact_quantiles(FrameParts(empty), "clv", [0.5]) is None


def _reference_top(frame: pl.DataFrame, k: int) -> set[int]:
    """The ``k`` rows of ``among`` with the largest ``v`` by a sort of everyone: a missing or
    non-finite ``v`` last, ties by the hash of ``customer_id``, least first."""
    ranked = frame.filter("among").with_columns(
        pl.when(pl.col("v").is_finite()).then(pl.col("v")).alias("key"),
        (pl.col("customer_id").hash(seed=parts_module.TIE_SEED) // 2048).alias("tie"),
    )
    ranked = ranked.sort(["key", "tie"], descending=[True, False], nulls_last=True)
    return set(ranked.head(k).get_column("customer_id").to_list())


@pytest.mark.parametrize("values", ["continuous", "few distinct"])
def test_top_rows_from_aggregates_are_those_of_a_sort(
    values: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:func:`top_rows` chooses the rows a sort of everyone would, ties and missing keys
    included, whether everyone is one part or parts of 997 rows, and no aggregate sends back
    more than a narrow range's values."""
    rng = np.random.default_rng(3)
    n = 12_000
    v = rng.normal(size=n) if values == "continuous" else rng.integers(0, 6, n).astype(float)
    v[rng.random(n) < 0.1] = np.nan
    v[:5] = [np.inf, -np.inf, np.nan, None, 0.0]
    frame = pl.DataFrame(
        {"customer_id": rng.permutation(n), "v": v, "among": rng.random(n) < 0.8},
        schema_overrides={"v": pl.Float64},
    ).with_columns(pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise("v").alias("v"))
    monkeypatch.setattr(parts_module, "GATHER_AT", 400)
    for k in (0, 1, 250, 5_000, 8_600, 9_500, n):
        whole = Counted(frame)
        chosen = parts_module.top_rows(whole, "v", k, pl.col("among"))
        got = set(frame.filter(chosen).get_column("customer_id").to_list())
        assert got == _reference_top(frame, k), k
        assert max(whole.sent, default=0) <= 2 * parts_module.BINS + 400
        monkeypatch.setattr(parts_module, "WRITE_ROWS", 997)
        sliced = parts_module.top_rows(FrameParts(frame), "v", k, pl.col("among"))
        assert set(frame.filter(sliced).get_column("customer_id").to_list()) == got
        monkeypatch.undo()
        monkeypatch.setattr(parts_module, "GATHER_AT", 400)


def test_a_plan_laid_out_gives_its_parts_back() -> None:
    parts = FrameParts(pl.DataFrame({"customer_id": [1, 2]}))
    plan = parts_module.laid_out(parts)
    assert parts_module.parts_of(plan) is parts
    other = pl.DataFrame({"customer_id": [1]})
    assert parts_module.parts_of(other) == FrameParts(other)


def test_sums_from_parts_are_exactly_rounded_in_any_split_and_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """:func:`exact_sums` gives ``math.fsum`` of all the values (nulls left out), bit for bit,
    for one part or parts of 997 rows in any order, where a plain sum moves with the split:
    money totals of the report that do not depend on the backend."""
    rng = np.random.default_rng(11)
    n = 50_000
    money = rng.lognormal(3, 2, n) * rng.choice([-1.0, 1.0], n) + rng.normal(0, 1e-9, n)
    frame = pl.DataFrame({"money": money, "small": rng.random(n) * 1e-3}).with_columns(
        pl.when(pl.int_range(pl.len()) % 13 == 0).then(None).otherwise("money").alias("money")
    )
    values = frame.get_column("money").drop_nulls().to_numpy()
    expected = [math.fsum(values), math.fsum(values[values > 0])]
    positive = pl.when(pl.col("money") > 0).then(pl.col("money"))
    assert parts_module.exact_sums(FrameParts(frame), "money", positive) == expected
    plain = set()
    monkeypatch.setattr(parts_module, "WRITE_ROWS", 997)
    for seed in range(4):
        shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
        assert parts_module.exact_sums(FrameParts(shuffled), "money", positive) == expected
        plain.add(float(shuffled.get_column("money").sum()))
    assert len(plain) > 1  # what the exact sum guards against
    assert parts_module.exact_sums(FrameParts(frame.head(0)), "money") == [0.0]


@pytest.mark.parametrize("values", ["continuous", "few distinct"])
def test_sums_of_the_largest_are_those_of_a_sort(
    values: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:func:`top_sums` gives the exactly rounded sum of the ``k`` largest finite values (ties at
    the ``k``-th counted once each), in parts of 997 rows, with missing and infinite values
    left out."""
    rng = np.random.default_rng(5)
    n = 20_000
    v = rng.normal(50, 80, n) if values == "continuous" else rng.integers(-3, 4, n) * 12.5
    v[:4] = [np.nan, np.inf, -np.inf, np.nan]
    frame = pl.DataFrame({"gain": v}).with_columns(
        pl.when(pl.int_range(pl.len()) == 4).then(None).otherwise("gain").alias("gain")
    )
    finite = np.sort(v[5:][np.isfinite(v[5:])])[::-1]
    ks = [-1, 0, 1, 7, 2_500, 10_000, finite.size - 1, finite.size, finite.size + 3]
    expected = [math.fsum(finite[: max(k, 0)]) for k in ks]
    monkeypatch.setattr(parts_module, "WRITE_ROWS", 997)
    monkeypatch.setattr(parts_module, "GATHER_AT", 400)
    assert parts_module.top_sums(FrameParts(frame), "gain", ks) == expected


@dataclass(frozen=True)
class Reading(FrameParts):
    """Parts in memory that record the columns each aggregate's parts hold."""

    read: list[list[str]] = field(default_factory=list)

    def aggregate(self, fn: Mapper) -> pl.DataFrame:
        self.read.append(self.frame.collect_schema().names())
        return super().aggregate(fn)

    def select(self, columns: Sequence[str]) -> Reading:
        return Reading(self.frame.select(columns), self.read)


def test_a_step_over_everyone_reads_only_the_columns_it_names() -> None:
    """Each step sends its parts only the columns its expressions name (a part that is a plan,
    such as the stages' results joined, then reads those alone), and a step that names none
    (a literal) still counts every row."""
    rng = np.random.default_rng(3)
    frame = pl.DataFrame(
        {
            "customer_id": np.arange(1_000),
            "clv": rng.lognormal(3, 1, 1_000),
            "segment_id": rng.integers(0, 4, 1_000),
            **{f"unused_{i}": rng.normal(size=1_000) for i in range(5)},
        }
    )
    parts = Reading(frame.lazy())
    assert parts_module.count_rows(parts, pl.lit(True), pl.col("clv") > 20) == [
        1_000,
        int((frame["clv"] > 20).sum()),
    ]
    sums = parts_module.group_sums(parts, [pl.col("segment_id")], [pl.col("clv").alias("clv")])
    assert int(sums["n"].sum()) == 1_000
    chosen = parts_module.top_rows(parts, "clv", 10)
    assert frame.filter(chosen).height == 10
    assert parts_module.count_rows(parts, pl.lit(True)) == [1_000]
    named = {"customer_id", "clv", "segment_id"}
    assert parts.read and all(set(read) <= named for read in parts.read[:-1]), parts.read
    assert ["segment_id", "clv"] in parts.read and ["clv"] in parts.read
    assert len(parts.read[-1]) == frame.width  # a literal alone: the parts as they are


@pytest.mark.parametrize("part_rows", [None, 7, 40, 1_000])
def test_parts_written_one_after_another_are_the_table(
    part_rows: int | None, tmp_path: Path
) -> None:
    """The parts of a table (frames and plans, the executors' files) written as one file or
    as parts of at most ``part_rows`` rows: read back, the rows of the parts in their order,
    every file with the metadata; a table without rows is one empty file."""
    rng = np.random.default_rng(5)
    sizes = [13, 0, 30, 1, 25]
    frames = [
        pl.DataFrame({"customer_id": np.arange(n) + 100 * i, "clv": rng.normal(size=n)})
        for i, n in enumerate(sizes)
    ]
    frames[2].write_parquet(tmp_path / "piece.parquet")
    pieces = [*frames[:2], pl.scan_parquet(tmp_path / "piece.parquet"), *frames[3:]]
    for name, given, want in (
        ("all", pieces, pl.concat(frames)),
        ("none", [frames[1]], frames[1]),
    ):
        path = write_parquet(given, tmp_path / name, {"crm.run_id": "r1"}, part_rows=part_rows)
        files = sorted(path.glob("*.parquet")) if part_rows else [path]
        assert_frame_equal(pl.concat([pl.read_parquet(f) for f in files]), want)
        assert all(read_scores_metadata(f) == {"crm.run_id": "r1"} for f in files)
        if part_rows:
            heights = [pl.read_parquet(f).height for f in files]
            assert max(heights) <= part_rows and (len(files) == 1 or min(heights) > 0)
