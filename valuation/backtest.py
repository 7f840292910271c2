"""Did last month's values come true: an earlier run's expected revenue against what came in."""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from crm_engine.stage_reports import ValueBacktest

__all__ = ["BASIS", "PREDICTED_COLUMNS", "value_backtest"]

PREDICTED_COLUMNS = (
    "customer_id",
    "plan_type",
    "value_tier",
    "p_alive",
    "expected_purchases",
    "expected_avg_value",
)
"""The ``crm.scores/v1`` columns of the earlier run the value backtest reads."""

BASIS = (
    "expected_purchases x expected_avg_value (revenue over the CLV horizon, undiscounted, "
    "before margin) x the elapsed share of the horizon"
)
"""What the realised revenue is compared with, in words (the manifest and the report say it)."""


def _errors_by(df: pl.DataFrame, key: str) -> list[dict[str, object]]:
    return (
        df.filter(pl.col(key).is_not_null())
        .group_by(key)
        .agg(
            pl.len().cast(pl.Int64).alias("customers"),
            pl.col("predicted").mean().alias("mean_predicted"),
            pl.col("revenue").mean().alias("mean_realised"),
            pl.col("error").abs().mean().alias("mae"),
        )
        .sort(key)
        .to_dicts()
    )


def value_backtest(
    predicted: pl.DataFrame,
    realised: pl.DataFrame,
    horizon_days: int,
    elapsed_days: int,
) -> ValueBacktest | None:
    """Compare an earlier run's expected revenue and P(alive) with what its customers did.

    Parameters
    ----------
    predicted
        The earlier run's scores: :data:`PREDICTED_COLUMNS`.
    realised
        ``customer_id``, ``revenue`` (Float64) and ``bought`` (Boolean) over the elapsed
        window (``features.realised_outcomes``); customers missing here are left out.
    horizon_days
        The earlier run's CLV horizon (``valuation.horizon_days``).
    elapsed_days
        Days of that horizon the data now covers (at most ``horizon_days``).

    Returns
    -------
    ValueBacktest or None
        None when no customer has an expected revenue (the valuation stage did not run).
        ``p_alive_auc`` is NaN when everyone, or no one, bought again.
    """
    if elapsed_days <= 0 or horizon_days <= 0:
        raise ValueError(
            f"elapsed_days={elapsed_days} and horizon_days={horizon_days} should be > 0"
        )
    share = min(1.0, elapsed_days / horizon_days)
    df = (
        predicted.select(PREDICTED_COLUMNS)
        .filter(
            pl.col("expected_purchases").is_not_null() & pl.col("expected_avg_value").is_not_null()
        )
        .join(realised.select("customer_id", "revenue", "bought"), on="customer_id", how="inner")
        .sort("customer_id")
        .with_columns(
            (pl.col("expected_purchases") * pl.col("expected_avg_value") * share).alias("predicted")
        )
        .with_columns((pl.col("predicted") - pl.col("revenue")).alias("error"))
    )
    if df.height == 0:
        return None
    alive = df.filter(pl.col("p_alive").is_not_null())
    bought = alive["bought"].to_numpy().astype(np.int8)
    both = 0 < bought.sum() < bought.size
    auc = float(roc_auc_score(bought, alive["p_alive"].to_numpy())) if both else float("nan")
    return ValueBacktest(
        horizon_days=horizon_days,
        elapsed_days=elapsed_days,
        elapsed_share=share,
        basis=BASIS,
        customers=df.height,
        mae=float(df["error"].abs().mean()),  # type: ignore[arg-type]
        mean_predicted=float(df["predicted"].mean()),  # type: ignore[arg-type]
        mean_realised=float(df["revenue"].mean()),  # type: ignore[arg-type]
        p_alive_auc=auc,
        bought_rate=float(bought.mean()) if bought.size else float("nan"),
        by_plan=_errors_by(df, "plan_type"),
        by_tier=_errors_by(df, "value_tier"),
    )
