"""Network experience: mean and worst month per KPI over the trailing complete months, and one
score of the experience over every month seen."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from crm_engine.config import FeaturesConfig
from features.window import attach, observed, trailing_months

__all__ = [
    "NETWORK_KPIS",
    "NETWORK_REFERENCE",
    "NETWORK_SCORE",
    "add_network",
    "network_columns",
    "network_score_expr",
]

# KPI -> True when a higher value is worse (worst = max), False when lower is worse (min).
NETWORK_KPIS: dict[str, bool] = {
    "dropped_call_rate": True,
    "call_setup_success_rate": False,
    "avg_download_mbps": False,
    "latency_ms": True,
    "packet_loss_pct": True,
    "coverage_5g_share": False,
}


NETWORK_SCORE = "network_experience_score"
"""One score of a customer's network experience over every month seen (higher is better)."""

NETWORK_REFERENCE: dict[str, float] = {
    "dropped_call_rate": 0.01,
    "call_setup_success_rate": 0.99,
    "avg_download_mbps": 50.0,
    "latency_ms": 30.0,
    "packet_loss_pct": 0.5,
    "coverage_5g_share": 0.5,
}
"""A typical month of a mobile network, per KPI: the score's zero."""


def _log_ratio(x: pl.Expr, reference: float, floor: float) -> pl.Expr:
    return (x.clip(lower_bound=floor) / reference).log()


def network_score_expr() -> pl.Expr:
    """A month's network experience: the mean, over its non-null KPIs, of how many times better
    (on a log scale) each is than :data:`NETWORK_REFERENCE`; 0 is a typical month, +1 about e
    times better on every KPI.

    Failure rates (dropped calls, call setup failures, packet loss) and latency are better when
    lower, download speed when higher, 5G coverage when its odds are higher. Each KPI moves
    multiplicatively with the radio conditions, so logs make them comparable without any
    population statistic (a customer's score depends on their own rows alone).
    """
    ref = NETWORK_REFERENCE
    coverage = pl.col("coverage_5g_share").clip(0.01, 0.99)
    goodness = [
        -_log_ratio(pl.col("dropped_call_rate"), ref["dropped_call_rate"], 1e-4),
        -_log_ratio(
            1.0 - pl.col("call_setup_success_rate"), 1.0 - ref["call_setup_success_rate"], 1e-4
        ),
        _log_ratio(pl.col("avg_download_mbps"), ref["avg_download_mbps"], 0.1),
        -_log_ratio(pl.col("latency_ms"), ref["latency_ms"], 1.0),
        -_log_ratio(pl.col("packet_loss_pct"), ref["packet_loss_pct"], 1e-3),
        (coverage / (1.0 - coverage)).log()
        - float(np.log(ref["coverage_5g_share"] / (1.0 - ref["coverage_5g_share"]))),
    ]
    return pl.mean_horizontal(goodness)


def network_columns(cfg: FeaturesConfig) -> dict[str, pl.DataType]:
    """Declared output of :func:`add_network`."""
    n = cfg.network_months
    cols: dict[str, pl.DataType] = {}
    for kpi in NETWORK_KPIS:
        cols[f"{kpi}_mean_{n}m"] = pl.Float64()
        cols[f"{kpi}_worst_{n}m"] = pl.Float64()
    cols[NETWORK_SCORE] = pl.Float64()
    return cols


def add_network(
    profile: pl.LazyFrame, network: pl.LazyFrame, as_of: dt.date, cfg: FeaturesConfig
) -> pl.LazyFrame:
    """Add mean and worst-month value per network KPI over the trailing ``cfg.network_months``,
    and :data:`NETWORK_SCORE`, the mean of :func:`network_score_expr` over every complete
    month before ``as_of``.

    Worst is the maximum for dropped calls, latency and packet loss, the minimum for call
    setup success, download speed and 5G coverage. Null KPI values are skipped; customers
    without network rows in the window get nulls (in the score: without any row).
    """
    n = cfg.network_months
    start, _ = trailing_months(as_of, n)
    recent = pl.col("month") >= pl.lit(start)
    aggs: list[pl.Expr] = []
    for kpi, higher_is_worse in NETWORK_KPIS.items():
        col = pl.when(recent).then(pl.col(kpi))  # null outside the window: skipped
        aggs.append(col.mean().alias(f"{kpi}_mean_{n}m"))
        aggs.append((col.max() if higher_is_worse else col.min()).alias(f"{kpi}_worst_{n}m"))
    aggs.append(pl.col(NETWORK_SCORE).mean())
    per_customer = (
        observed(network, "network", as_of)
        .with_columns(network_score_expr().alias(NETWORK_SCORE))
        .group_by("customer_id")
        .agg(aggs)
    )
    return attach(profile, per_customer)
