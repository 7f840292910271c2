"""Exact quantiles of a frame of everyone in parts, from aggregates where the parts lie."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pytest

from crm_engine import parts as parts_module
from crm_engine.parts import GATHER_AT, FrameParts, Mapper, exact_quantiles

QUANTILES = [0.0, 0.25, 0.5, 0.8, 0.95, 0.999, 1.0]


@dataclass(frozen=True)
class Counted(FrameParts):
    """Parts in memory that record how many rows each aggregate sent back."""

    sent: list[int] = field(default_factory=list)

    def aggregate(self, fn: Mapper) -> pl.DataFrame:
        out = super().aggregate(fn)
        self.sent.append(out.height)
        return out


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
