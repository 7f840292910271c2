"""Holdout validation: actual purchases vs lifetimes' holdout split, metrics, the plot."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from crm_engine.config import ValuationConfig
from valuation import ValuationError, import_lifetimes
from valuation.holdout import FREQUENCY_BUCKETS, holdout_validation, plot_holdout, purchase_days

AS_OF = dt.date(2024, 12, 31)
H = 90


def _lifetimes_summary(transactions: pl.DataFrame, cut: dt.date) -> pl.DataFrame:
    """Profile at ``cut`` from lifetimes' own summary (an independent BTYD definition)."""
    lt = import_lifetimes()
    tx = transactions.filter((pl.col("amount") > 0) & (pl.col("ts").dt.date() < cut))
    summary = lt.utils.summary_data_from_transaction_data(
        tx.to_pandas(),
        "customer_id",
        "ts",
        monetary_value_col="amount",
        freq="D",
        observation_period_end=pd.Timestamp(cut - dt.timedelta(days=1)),
    )
    return pl.from_pandas(summary.reset_index()).with_columns(
        pl.col("customer_id").cast(pl.Int64),
        pl.col("frequency").cast(pl.Int64),
        pl.lit(True).alias("has_purchase"),
    )


def test_purchase_days_match_lifetimes_holdout_counts(transactions: pl.DataFrame) -> None:
    lt = import_lifetimes()
    cut = AS_OF - dt.timedelta(days=H)
    ours = (
        purchase_days(transactions.lazy(), cut, H)
        .collect()
        .group_by("customer_id")
        .agg(pl.len().cast(pl.Int64).alias("n"))
    )
    # lifetimes compares timestamps with the period ends at midnight: pass whole days.
    pos = (
        transactions.filter(pl.col("amount") > 0)
        .with_columns(pl.col("ts").dt.truncate("1d"))
        .to_pandas()
    )
    # monetary_value_col: under pandas 3, lifetimes' holdout count fails without a value column.
    cal_hold = lt.utils.calibration_and_holdout_data(
        pos,
        "customer_id",
        "ts",
        freq="D",
        monetary_value_col="amount",
        calibration_period_end=pd.Timestamp(cut - dt.timedelta(days=1)),
        observation_period_end=pd.Timestamp(AS_OF - dt.timedelta(days=1)),
    )
    theirs = pl.from_pandas(cal_hold.reset_index()).select(
        pl.col("customer_id").cast(pl.Int64), pl.col("frequency_holdout").cast(pl.Int64)
    )
    joined = theirs.join(ours, on="customer_id", how="left").with_columns(pl.col("n").fill_null(0))
    assert joined["frequency_holdout"].sum() > 100
    assert (joined["frequency_holdout"] == joined["n"]).all()
    # Days are offsets in [0, H); refunds are not purchases.
    days = purchase_days(transactions.lazy(), cut, H).collect()["day"]
    assert days.min() >= 0 and days.max() < H


def test_holdout_validation_metrics_and_selection(
    transactions: pl.DataFrame, tmp_path: Path
) -> None:
    cfg = ValuationConfig(holdout_days=H)
    result = holdout_validation(
        lambda cut, sample: _lifetimes_summary(transactions, cut),
        lambda start, days, sample: purchase_days(transactions.lazy(), start, days).collect(),
        AS_OF,
        cfg,
        models=("bgnbd", "mbgnbd", "pareto"),
    )
    assert result.cut == AS_OF - dt.timedelta(days=H)
    assert set(result.metrics) == {"bgnbd", "mbgnbd", "pareto"}
    total_actual = (
        purchase_days(transactions.lazy(), result.cut, H)
        .collect()
        .join(_lifetimes_summary(transactions, result.cut), on="customer_id", how="semi")
        .height
    )
    for name, m in result.metrics.items():
        assert m is not None, result.errors
        assert m["total_actual"] == total_actual
        # A correctly specified model predicts the total within 25% on 600 customers.
        assert m["total_predicted"] == pytest.approx(total_actual, rel=0.25), name
        assert 0 < m["mae"] < 5
        cal = result.calibration[name]
        assert cal["bucket"].to_list() == list(FREQUENCY_BUCKETS)
        assert cal["n"].sum() == result.n_customers
        # The curve ends at the totals.
        assert result.curve[name][-1] == pytest.approx(m["total_predicted"])
    assert result.curve["actual"][-1] == total_actual
    assert result.curve["day"][-1] == H
    best = result.best
    assert result.metrics[best]["mae"] == min(m["mae"] for m in result.metrics.values())
    summary = result.to_dict()
    assert summary["best"] == best
    json.dumps(summary)
    png = plot_holdout(result, tmp_path / "plots" / "holdout.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_holdout_needs_buyers_before_the_cut(transactions: pl.DataFrame) -> None:
    empty = _lifetimes_summary(transactions, AS_OF).head(0)
    with pytest.raises(ValuationError, match="purchased before the cut"):
        holdout_validation(
            lambda cut, sample: empty,
            lambda s, d, sample: pl.DataFrame({"customer_id": [], "day": []}),
            AS_OF,
            ValuationConfig(),
        )
    with pytest.raises(ValuationError, match="holdout_days=0"):
        holdout_validation(
            lambda c, sample: empty,
            lambda s, d, sample: empty,
            AS_OF,
            ValuationConfig(),
            holdout_days=0,
        )


def test_selection_skips_failed_models() -> None:
    from valuation import select_by_mae

    assert select_by_mae({"bgnbd": None, "mbgnbd": {"mae": 2.0}, "pareto": {"mae": 1.5}}) == (
        "pareto"
    )
    assert select_by_mae({"bgnbd": {"mae": 1.0}, "mbgnbd": {"mae": 1.0}}) == "bgnbd"
    with pytest.raises(ValuationError, match="none of"):
        select_by_mae({"bgnbd": None, "pareto": {"mae": float("nan")}})
    assert np.isfinite(1.0)
