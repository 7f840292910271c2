"""Did last month's churn scores come true: an earlier run's probabilities against who left."""

from __future__ import annotations

import polars as pl

from churn.metrics import binary_metrics, reliability_curve
from crm_engine.contracts import score_values
from crm_engine.stage_reports import ChurnBacktest

__all__ = ["PREDICTED_COLUMNS", "churn_backtest"]

PREDICTED_COLUMNS = ("customer_id", "churn_probability", "churn_risk_band")
"""The ``crm.scores/v1`` columns of the earlier run the churn backtest reads."""


def churn_backtest(
    predicted: pl.DataFrame,
    churned: pl.DataFrame,
    horizon_days: int,
    elapsed_days: int,
    save_list: pl.Series | None = None,
) -> ChurnBacktest | None:
    """Compare an earlier run's churn scores with who really left since.

    Parameters
    ----------
    predicted
        The earlier run's scores: :data:`PREDICTED_COLUMNS`.
    churned
        ``customer_id``, ``churned`` (Boolean): who left in the elapsed window
        (``features.realised_outcomes``); customers missing here are left out.
    horizon_days
        The earlier run's churn horizon.
    elapsed_days
        Days of that horizon the data now covers (at most ``horizon_days``).
    save_list
        The ``customer_id`` of the earlier run's save-first list, if it had one.

    Returns
    -------
    ChurnBacktest or None
        None when no customer has a churn probability (the churn stage did not run).
    """
    if elapsed_days <= 0 or horizon_days <= 0:
        raise ValueError(
            f"elapsed_days={elapsed_days} and horizon_days={horizon_days} should be > 0"
        )
    df = (
        predicted.select(PREDICTED_COLUMNS)
        .filter(pl.col("churn_probability").is_not_null())
        .join(churned.select("customer_id", "churned"), on="customer_id", how="inner")
        .sort("customer_id")
    )
    if df.height == 0:
        return None
    y = df["churned"].to_numpy()
    p = df["churn_probability"].to_numpy()
    m = binary_metrics(y, p)
    bands = score_values("churn_risk_band")
    by_band = (
        df.filter(pl.col("churn_risk_band").is_not_null())
        .group_by("churn_risk_band")
        .agg(
            pl.len().cast(pl.Int64).alias("customers"),
            pl.col("churned").sum().cast(pl.Int64).alias("churned"),
            pl.col("churn_probability").mean().alias("mean_predicted"),
            pl.col("churned").cast(pl.Float64).mean().alias("realised_rate"),
        )
        .sort(pl.col("churn_risk_band").replace_strict(bands, list(range(len(bands))), default=99))
    )
    deciles = reliability_curve(y, p, n_bins=10).select(
        (pl.col("bin") + 1).alias("decile"),
        pl.col("count").alias("customers"),
        "mean_predicted",
        pl.col("observed_rate").alias("realised_rate"),
    )
    saved = None
    if save_list is not None:
        ids = save_list.cast(df.schema["customer_id"]).alias("customer_id").to_frame()
        listed = df.join(ids, on="customer_id", how="semi")
        rate = float(listed["churned"].mean()) if listed.height else None  # type: ignore[arg-type]
        saved = {
            "customers": listed.height,
            "churned": int(listed["churned"].sum()),
            "realised_rate": rate,
        }
    return ChurnBacktest(
        horizon_days=horizon_days,
        elapsed_days=elapsed_days,
        elapsed_share=min(1.0, elapsed_days / horizon_days),
        customers=df.height,
        churned=int(y.sum()),
        roc_auc=m["roc_auc"],
        lift_top_decile=m["lift_top_decile"],
        capture_top_decile=m["capture_top_decile"],
        brier=m["brier"],
        mean_predicted=m["mean_prediction"],
        realised_rate=m["base_rate"],
        by_band=by_band.to_dicts(),
        by_decile=deciles.to_dicts(),
        save_list=saved,
    )
