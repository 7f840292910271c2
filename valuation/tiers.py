"""Value tiers (bronze / silver / gold / platinum) from CLV quantiles."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import polars as pl

from crm_engine.contracts import labels_at, score_values

TIERS: tuple[str, ...] = tuple(reversed(score_values("value_tier")))
"""The ``crm.scores/v1`` value tiers, lowest first: a CLV above ``k`` cut points is ``TIERS[k]``."""


def tier_cut_points(clv: np.ndarray, quantiles: Sequence[float]) -> list[float]:
    """CLV values at the configured quantiles (three increasing quantiles for four tiers)."""
    q = list(quantiles)
    if len(q) != len(TIERS) - 1 or any(b <= a for a, b in itertools.pairwise(q)):
        raise ValueError(f"tier_quantiles must be {len(TIERS) - 1} increasing values, got {q}")
    values = np.asarray(clv, dtype=np.float64)
    if len(values) == 0:
        return [0.0] * len(q)
    return [float(x) for x in np.quantile(values, q)]


def assign_tiers(clv: np.ndarray, cut_points: Sequence[float]) -> pl.Series:
    """Tier of each CLV: a customer moves up a tier only when strictly above its cut point.

    Ties therefore stay in the lower tier (a base where most CLVs are 0 is mostly bronze,
    not platinum).
    """
    values = np.asarray(clv, dtype=np.float64)
    idx = np.searchsorted(np.asarray(cut_points, dtype=np.float64), values, side="left")
    return labels_at("value_tier", TIERS, idx)
