"""Lifecycle stage (new / active / at_risk / dormant), each plan type by its own signals."""

from __future__ import annotations

import polars as pl

from crm_engine.config import LifecycleRules
from crm_engine.contracts import score_values

STAGES: tuple[str, ...] = score_values("lifecycle_stage")
"""The ``crm.scores/v1`` lifecycle stages, in the order a customer goes through them."""

OPTIONAL_INPUTS: dict[str, pl.DataType] = {
    "plan_type": pl.String(),
    "contract_days_left": pl.Int64(),
    "spend_trend": pl.Float64(),
}
"""Profile columns the postpaid rules read; a frame without one gets it as nulls
(:func:`with_lifecycle_inputs`), and no plan type reads as prepaid."""


def with_lifecycle_inputs(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the :data:`OPTIONAL_INPUTS` it lacks added as nulls."""
    return frame.with_columns(
        pl.lit(None, t).alias(c) for c, t in OPTIONAL_INPUTS.items() if c not in frame.columns
    )


def lifecycle_stage_expr(rules: LifecycleRules) -> pl.Expr:
    """Stage of each customer, first rule that matches wins.

    1. ``new``: ``tenure_days < new_tenure_days``;

    A **postpaid** customer pays a bill every month until they cancel, so a silence or a
    falling P(alive) says little; their own signals do:

    2. ``at_risk``: the minimum term ends within ``at_risk_contract_days`` of ``as_of``
       (``0 <= contract_days_left <= at_risk_contract_days``), the bill falls
       (``spend_trend <= at_risk_bill_trend``), or no payment for ``dormant_recency_days``
       (a bill unpaid is a customer to call, not one gone);
    3. ``active`` otherwise.

    Every other customer (prepaid, or no plan type) by their purchases:

    2. ``dormant``: ``recency_days >= dormant_recency_days`` and ``p_alive < dormant_p_alive``
       (a customer who never purchased counts the days since signup as recency);
    3. ``at_risk``: ``p_alive < at_risk_p_alive``, or no repeat purchase (``frequency`` 0)
       and ``recency_days >= dormant_recency_days``: one purchase gives no rhythm to measure
       the silence against, so the silence alone says at risk;
    4. ``active`` otherwise.

    Expects ``tenure_days``, ``recency_days`` (null: no purchase), ``frequency`` (repeat
    purchase days; null counts as 0), ``p_alive`` and the :data:`OPTIONAL_INPUTS`.
    """
    recency = pl.coalesce(pl.col("recency_days"), pl.col("tenure_days"))
    silent = recency >= rules.dormant_recency_days
    one_purchase = pl.col("frequency").fill_null(0) == 0
    postpaid = (pl.col("plan_type") == "postpaid").fill_null(False)
    term_ends = pl.col("contract_days_left").is_between(0, rules.at_risk_contract_days)
    falling = pl.col("spend_trend") <= rules.at_risk_bill_trend
    postpaid_risk = term_ends.fill_null(False) | falling.fill_null(False) | silent
    return (
        pl.when(pl.col("tenure_days") < rules.new_tenure_days)
        .then(pl.lit("new"))
        .when(postpaid)
        .then(pl.when(postpaid_risk).then(pl.lit("at_risk")).otherwise(pl.lit("active")))
        .when(silent & (pl.col("p_alive") < rules.dormant_p_alive))
        .then(pl.lit("dormant"))
        .when((pl.col("p_alive") < rules.at_risk_p_alive) | (silent & one_purchase))
        .then(pl.lit("at_risk"))
        .otherwise(pl.lit("active"))
        .cast(pl.String)
        .alias("lifecycle_stage")
    )
