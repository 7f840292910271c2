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
    3. ``at_risk``: ``p_alive < at_risk_p_alive``, or no repeat purchase (``frequency`` 0)
       and ``recency_days >= dormant_recency_days``: one purchase gives no rhythm to measure
       the silence against, so the silence alone says at risk;
    4. ``active`` otherwise.

    Expects columns ``tenure_days``, ``recency_days`` (null: no purchase), ``frequency``
    (repeat purchase days; null counts as 0) and ``p_alive``.
    """
    recency = pl.coalesce(pl.col("recency_days"), pl.col("tenure_days"))
    silent = recency >= rules.dormant_recency_days
    one_purchase = pl.col("frequency").fill_null(0) == 0
    return (
        pl.when(pl.col("tenure_days") < rules.new_tenure_days)
        .then(pl.lit("new"))
        .when(silent & (pl.col("p_alive") < rules.dormant_p_alive))
        .then(pl.lit("dormant"))
        .when((pl.col("p_alive") < rules.at_risk_p_alive) | (silent & one_purchase))
        .then(pl.lit("at_risk"))
        .otherwise(pl.lit("active"))
        .cast(pl.String)
        .alias("lifecycle_stage")
    )
