"""Lifecycle stage (new / active / at_risk / dormant) from tenure, recency and P(alive)."""

from __future__ import annotations

import polars as pl

from crm_engine.config import LifecycleRules

STAGES: tuple[str, ...] = ("new", "active", "at_risk", "dormant")


def lifecycle_stage_expr(rules: LifecycleRules) -> pl.Expr:
    """Stage of each customer, first rule that matches wins.

    1. ``new``: ``tenure_days < new_tenure_days``;
    2. ``dormant``: ``recency_days >= dormant_recency_days`` and ``p_alive < dormant_p_alive``
       (a customer who never purchased counts the days since signup as recency);
    3. ``at_risk``: ``p_alive < at_risk_p_alive``;
    4. ``active`` otherwise.

    Expects columns ``tenure_days``, ``recency_days`` (null: no purchase) and ``p_alive``.
    """
    recency = pl.coalesce(pl.col("recency_days"), pl.col("tenure_days"))
    return (
        pl.when(pl.col("tenure_days") < rules.new_tenure_days)
        .then(pl.lit("new"))
        .when((recency >= rules.dormant_recency_days) & (pl.col("p_alive") < rules.dormant_p_alive))
        .then(pl.lit("dormant"))
        .when(pl.col("p_alive") < rules.at_risk_p_alive)
        .then(pl.lit("at_risk"))
        .otherwise(pl.lit("active"))
        .cast(pl.String)
        .alias("lifecycle_stage")
    )
