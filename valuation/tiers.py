"""Value tiers (bronze / silver / gold / platinum) from CLV quantiles."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import polars as pl

from crm_engine.contracts import score_values
from crm_engine.parts import FrameParts, Parts, exact_quantiles

TIERS: tuple[str, ...] = tuple(reversed(score_values("value_tier")))
"""The ``crm.scores/v1`` value tiers, lowest first: a CLV above ``k`` cut points is ``TIERS[k]``."""


def tier_cut_points(clv: np.ndarray | Parts, quantiles: Sequence[float]) -> list[float]:
    """CLV values at the configured quantiles (three increasing quantiles for four tiers), of
    an array or of the ``clv`` column of a frame of everyone in parts (exactly, from
    aggregates where the parts lie: :func:`crm_engine.parts.exact_quantiles`)."""
    q = list(quantiles)
    if len(q) != len(TIERS) - 1 or any(b <= a for a, b in itertools.pairwise(q)):
        raise ValueError(f"tier_quantiles must be {len(TIERS) - 1} increasing values, got {q}")
    if isinstance(clv, np.ndarray):
        clv = FrameParts(pl.DataFrame({"clv": np.asarray(clv, dtype=np.float64)}))
    cuts = exact_quantiles(clv, "clv", q)
    return [0.0] * len(q) if cuts is None else cuts


def value_tier(cut_points: Sequence[float], clv: str = "clv") -> pl.Expr:
    """The ``value_tier`` of each ``clv``: a customer moves up a tier only when strictly above
    its cut point.

    Ties therefore stay in the lower tier (a base where most CLVs are 0 is mostly bronze,
    not platinum).
    """
    tier = pl.lit(TIERS[0])
    for label, cut in zip(TIERS[1:], cut_points, strict=True):
        tier = pl.when(pl.col(clv) > cut).then(pl.lit(label)).otherwise(tier)
    return tier.cast(pl.String).alias("value_tier")


def assign_tiers(clv: np.ndarray, cut_points: Sequence[float]) -> pl.Series:
    """:func:`value_tier` of an array of CLVs."""
    frame = pl.DataFrame({"clv": np.asarray(clv, dtype=np.float64)})
    return frame.select(value_tier(cut_points)).to_series()
