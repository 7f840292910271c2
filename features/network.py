"""Network experience: mean and worst month per KPI over the trailing complete months."""

from __future__ import annotations

import datetime as dt

import polars as pl

from crm_engine.config import FeaturesConfig
from features.window import attach, observed, trailing_months

__all__ = ["NETWORK_KPIS", "add_network", "network_columns"]

# KPI -> True when a higher value is worse (worst = max), False when lower is worse (min).
NETWORK_KPIS: dict[str, bool] = {
    "dropped_call_rate": True,
    "call_setup_success_rate": False,
    "avg_download_mbps": False,
    "latency_ms": True,
    "packet_loss_pct": True,
    "coverage_5g_share": False,
}


def network_columns(cfg: FeaturesConfig) -> dict[str, pl.DataType]:
    """Declared output of :func:`add_network`."""
    n = cfg.network_months
    cols: dict[str, pl.DataType] = {}
    for kpi in NETWORK_KPIS:
        cols[f"{kpi}_mean_{n}m"] = pl.Float64()
        cols[f"{kpi}_worst_{n}m"] = pl.Float64()
    return cols


def add_network(
    profile: pl.LazyFrame, network: pl.LazyFrame, as_of: dt.date, cfg: FeaturesConfig
) -> pl.LazyFrame:
    """Add mean and worst-month value per network KPI over the trailing ``cfg.network_months``.

    Worst is the maximum for dropped calls, latency and packet loss, the minimum for call
    setup success, download speed and 5G coverage. Null KPI values are skipped; customers
    without network rows in the window get nulls.
    """
    n = cfg.network_months
    start, _ = trailing_months(as_of, n)
    aggs: list[pl.Expr] = []
    for kpi, higher_is_worse in NETWORK_KPIS.items():
        col = pl.col(kpi)
        aggs.append(col.mean().alias(f"{kpi}_mean_{n}m"))
        aggs.append((col.max() if higher_is_worse else col.min()).alias(f"{kpi}_worst_{n}m"))
    per_customer = (
        observed(network, "network", as_of)
        .filter(pl.col("month") >= pl.lit(start))
        .group_by("customer_id")
        .agg(aggs)
    )
    return attach(profile, per_customer)
