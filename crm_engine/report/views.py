"""The report's views as frames (what the tests check) and the save-first list."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl

from crm_engine.config import FeaturesConfig, age_band_labels
from crm_engine.contracts import LOST_BAND, LOST_STAGE, score_values
from crm_engine.parts import (
    FrameParts,
    Parts,
    count_rows,
    gather_rows,
    group_sums,
    top_rows,
    value_range,
)

SAVE_FIRST_FILE = "save_first.csv"
SAVE_FIRST_ROWS = 100
"""Default length of the save-first list (``output.save_first_rows``)."""
SAVE_FIRST_COLUMNS = (
    "customer_id",
    "segment_name",
    "value_tier",
    "lifecycle_stage",
    "plan_type",
    "region",
    "clv",
    "churn_probability",
    "value_at_risk",
    "retention_profit",
)
"""Columns of ``save_first.csv`` before the reasons (all ``crm.scores/v1`` columns)."""
NOT_TO_SAVE_STAGES = (LOST_STAGE,)
"""Lifecycle stages left out of the save-first list: a win-back campaign, not a retention call."""
NOT_TO_SAVE_BANDS = (LOST_BAND,)
"""Churn risk bands left out of the save-first list."""

TIER_ORDER = score_values("value_tier")
RISK_ORDER = score_values("churn_risk_band")
STAGE_ORDER = score_values("lifecycle_stage")
LOYALTY_ORDER = score_values("loyalty_class")
"""The orders of the label columns: as ``crm.scores/v1`` declares their values."""
UNKNOWN = "unknown"
ALL_CUSTOMERS = "All customers"

Scores = pl.DataFrame | Parts
"""The run's scores: a frame, or parts of everyone where they lie (:mod:`crm_engine.parts`)."""


def dimension_orders(age_bands: Sequence[int] | None = None) -> dict[str, tuple[str, ...]]:
    """The order of each descriptive dimension's values on the report's axes.

    Parameters
    ----------
    age_bands
        The run's ``features.age_bands`` cut points (None: the default configuration's): the
        age bands in their order, then ``unknown``.
    """
    cuts = FeaturesConfig().age_bands if age_bands is None else age_bands
    return {
        "spend_level": score_values("spend_level"),
        "age_band": (*age_band_labels(cuts), UNKNOWN),
        "area_type": ("urban", "rural", UNKNOWN),
    }


def ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    """``values`` in ``order``, then the others sorted, ``unknown`` last."""
    present = set(values)
    known = [v for v in order if v in present and v != UNKNOWN]
    rest = sorted(v for v in present if v not in order and v != UNKNOWN)
    return known + rest + ([UNKNOWN] if UNKNOWN in present else [])


def rank(column: str, order: Sequence[str]) -> pl.Expr:
    """Sort key of a text column: its place in ``order``, others after, ``unknown`` last."""
    return (
        pl.when(pl.col(column) == UNKNOWN)
        .then(len(order) + 1)
        .otherwise(
            pl.col(column).replace_strict(
                {v: i for i, v in enumerate(order)}, default=len(order), return_dtype=pl.Int64
            )
        )
    )


def value_risk_matrix(scores: Scores) -> pl.DataFrame:
    """Customers and value at risk in each value tier x churn risk band cell.

    Every pair of the tiers and bands present is a row (empty cells hold zeros), tiers and bands
    in their natural order; a missing tier or band is ``unknown``. The cells add up to every
    scored customer and to the total value at risk.

    Returns
    -------
    polars.DataFrame
        ``value_tier``, ``churn_risk_band``, ``customers`` (Int64), ``value_at_risk`` (Float64).
    """
    cells = group_sums(
        as_parts(scores),
        [
            pl.col("value_tier").fill_null(UNKNOWN).alias("value_tier"),
            pl.col("churn_risk_band").fill_null(UNKNOWN).alias("churn_risk_band"),
        ],
        [pl.col("value_at_risk").cast(pl.Float64).alias("value_at_risk")],
    ).rename({"n": "customers"})
    tiers = ordered(cells["value_tier"].to_list(), TIER_ORDER)
    bands = ordered(cells["churn_risk_band"].to_list(), RISK_ORDER)
    grid = pl.DataFrame({"value_tier": tiers}).join(
        pl.DataFrame({"churn_risk_band": bands}), how="cross"
    )
    return (
        grid.join(cells, on=["value_tier", "churn_risk_band"], how="left")
        .with_columns(pl.col("customers").fill_null(0), pl.col("value_at_risk").fill_null(0.0))
        .sort(rank("value_tier", TIER_ORDER), rank("churn_risk_band", RISK_ORDER))
    )


def lifecycle_funnel(scores: Scores) -> pl.DataFrame:
    """Customers, share, CLV and value at risk per lifecycle stage, new -> ... -> dormant (lost).

    Returns
    -------
    polars.DataFrame
        ``lifecycle_stage``, ``customers`` (Int64), ``share``, ``clv``, ``value_at_risk``.
    """
    stages = group_sums(
        as_parts(scores),
        [pl.col("lifecycle_stage").fill_null(UNKNOWN).alias("lifecycle_stage")],
        [pl.col(c).cast(pl.Float64).alias(c) for c in ("clv", "value_at_risk")],
    )
    return (
        stages.rename({"n": "customers"})
        .with_columns((pl.col("customers") / pl.col("customers").sum()).alias("share"))
        .sort(rank("lifecycle_stage", STAGE_ORDER))
        .select("lifecycle_stage", "customers", "share", "clv", "value_at_risk")
    )


def loyalty_split(scores: Scores, by: str | None = None) -> pl.DataFrame:
    """Share of promoters, passives and detractors (predicted class), overall or per ``by``.

    Customers without a loyalty class are left out. ``net`` is promoters minus detractors in
    points, as the net promoter score is read.

    Returns
    -------
    polars.DataFrame
        ``group`` (``All customers`` or the ``by`` value), ``customers``, ``promoter``,
        ``passive``, ``detractor`` (shares), ``net``; groups by customers, largest first.
    """
    key = pl.lit(ALL_CUSTOMERS) if by is None else pl.col(by).cast(pl.String).fill_null(UNKNOWN)
    classes = pl.col("loyalty_class")
    counts = group_sums(
        as_parts(scores),
        [key.alias("group")],
        [(classes == c).cast(pl.Int64).alias(c) for c in LOYALTY_ORDER]
        + [classes.is_not_null().cast(pl.Int64).alias("customers")],
    )
    return (
        counts.filter(pl.col("customers") > 0)
        .select(
            "group",
            "customers",
            *((pl.col(c) / pl.col("customers")).alias(c) for c in LOYALTY_ORDER),
        )
        .with_columns(((pl.col("promoter") - pl.col("detractor")) * 100).alias("net"))
        .sort(["customers", "group"], descending=[True, False])
    )


def save_first(scores: Scores, n: int = SAVE_FIRST_ROWS) -> pl.DataFrame:
    """The customers to call first, with their reasons.

    With ``retention_profit`` (the churn stage's expected profit of an offer): the ``n`` most
    profitable to contact among those worth it (profit > 0, ``churn_risk_band`` high under
    the profit bands); without it, the ``n`` highest values at risk. Dormant and lost customers
    (lifecycle stage or churn risk band) are left out. Every column is a ``crm.scores/v1``
    column: :data:`SAVE_FIRST_COLUMNS`, then ``churn_reasons`` joined with ``"; "``. Chosen
    where the scores lie (:func:`crm_engine.parts.top_rows`: ties at the ``n``-th broken by a
    hash of ``customer_id``, the same on any backend), only these rows gathered, then listed by
    the rank column and ``customer_id``.
    """
    parts = as_parts(scores)
    columns = parts.plan().collect_schema().names()
    cols = [c for c in SAVE_FIRST_COLUMNS if c in columns]
    by = save_first_rank(parts)
    keep = pl.col(by).is_not_null()
    if by == "retention_profit":
        keep &= pl.col(by) > 0
    if "lifecycle_stage" in columns:
        keep &= ~pl.col("lifecycle_stage").is_in(NOT_TO_SAVE_STAGES).fill_null(False)
    if "churn_risk_band" in columns:
        keep &= ~pl.col("churn_risk_band").is_in(NOT_TO_SAVE_BANDS).fill_null(False)
    digits = {"clv": 2, "value_at_risk": 2, "retention_profit": 2, "churn_probability": 4}
    exprs = [pl.col(c).round(digits[c]) if c in digits else pl.col(c) for c in cols]
    read = list(dict.fromkeys([*cols, by]))
    if "churn_reasons" in columns:
        exprs.append(pl.col("churn_reasons").list.join("; ").alias("churn_reasons"))
        read.append("churn_reasons")
    chosen = gather_rows(parts, top_rows(parts, by, n, among=keep) & keep, read)
    return chosen.sort([by, "customer_id"], descending=[True, False]).select(exprs)


def save_first_rank(scores: Scores) -> str:
    """The column the save-first list ranks by: ``retention_profit`` when the run has it."""
    parts = as_parts(scores)
    if "retention_profit" in parts.plan().collect_schema().names():
        (valued,) = count_rows(parts, pl.col("retention_profit").is_not_null())
        if valued:
            return "retention_profit"
    return "value_at_risk"


def _binned(frame: pl.DataFrame, value: pl.Expr, edges: np.ndarray) -> pl.DataFrame:
    """A slice's finite values of ``value`` counted in the bins of ``edges``."""
    values = frame.select(value.alias("v")).get_column("v").drop_nulls().to_numpy()
    counts, _ = np.histogram(values[np.isfinite(values)], bins=edges)
    return pl.DataFrame({"bin": np.arange(counts.size), "n": counts.astype(np.int64)})


def histogram_counts(parts: Parts, value: pl.Expr, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.histogram`` of the finite values of ``value`` (an expression of a part's
    columns) in ``bins`` equal bins over their range: its edges and counts, from two
    aggregates of the parts (their range, then each part's counts); both empty without a
    value."""
    found = value_range(parts, value)
    if found is None:
        return np.empty(0), np.empty(0, dtype=np.int64)
    _, low, high = found
    if low == high:  # numpy's range of one value
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    counts = parts.aggregate(functools.partial(_binned, value=value, edges=edges))
    summed = counts.group_by("bin").agg(pl.col("n").sum()).sort("bin")
    total = np.zeros(bins, dtype=np.int64)
    total[summed.get_column("bin").to_numpy()] = summed.get_column("n").to_numpy()
    return edges, total


def as_parts(scores: Scores) -> Parts:
    """The scores as parts: the parts themselves, or a frame in one (tests, small runs)."""
    return scores if isinstance(scores, Parts) else FrameParts(scores)
