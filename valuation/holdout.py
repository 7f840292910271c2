"""Holdout validation: refit with the cut moved back, compare predicted and actual purchases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from crm_engine.config import ValuationConfig
from features import CustomerSample, ProfileAt
from valuation.base import PurchaseModel, ValuationError
from valuation.select import scoring_model, select_by_mae
from valuation.stage import btyd_frame

FREQUENCY_BUCKETS: tuple[str, ...] = ("0", "1", "2", "3", "4", "5", "6", "7+")
CURVE_POINTS = 30


def purchase_days(
    transactions: pl.LazyFrame, start: dt.date, days: int, sample: CustomerSample | None = None
) -> pl.LazyFrame:
    """Distinct purchase days (``amount > 0``) of each customer in ``[start, start + days)``.

    The same purchase definition as the BTYD profile: several purchases on one day count
    once. Returns ``customer_id`` and ``day`` (Int64 offset from ``start``, 0-based), of
    ``sample``'s customers (None: everyone).
    """
    end = start + dt.timedelta(days=days)
    day = pl.col("ts").dt.date()
    if sample is not None:
        transactions = transactions.filter(sample.expr())
    return (
        transactions.filter((pl.col("amount") > 0) & (day >= start) & (day < end))
        .select("customer_id", (day - pl.lit(start)).dt.total_days().cast(pl.Int64).alias("day"))
        .unique()
    )


@dataclass
class HoldoutResult:
    """Per-model holdout metrics, calibration tables and cumulative curves.

    Attributes
    ----------
    cut
        The calibration cut (``as_of - holdout_days``).
    holdout_days
        Length of the holdout window.
    n_customers
        Customers with a purchase before the cut (the ones compared).
    metrics
        Model name -> ``mae``, ``total_predicted``, ``total_actual``, ``log_likelihood``,
        ``params``; None for a model that failed (its error is in ``errors``).
    calibration
        Model name -> frame ``bucket``, ``n``, ``mean_predicted``, ``mean_actual`` by
        calibration-period frequency.
    curve
        ``day`` and ``actual`` cumulative purchases plus one column per model.
    errors
        Model name -> error message for models that could not be fitted.
    """

    cut: dt.date
    holdout_days: int
    n_customers: int
    metrics: dict[str, dict[str, Any] | None]
    calibration: dict[str, pl.DataFrame]
    curve: pl.DataFrame
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def best(self) -> str:
        """The model with the lowest MAE per customer."""
        return select_by_mae(self.metrics)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (aggregates only, no customer rows)."""
        return {
            "cut": self.cut.isoformat(),
            "holdout_days": self.holdout_days,
            "n_customers": self.n_customers,
            "metrics": self.metrics,
            "best": self.best if any(m is not None for m in self.metrics.values()) else None,
            "calibration": {k: v.to_dicts() for k, v in self.calibration.items()},
            "errors": self.errors,
        }


def _bucket(freq: pl.Expr) -> pl.Expr:
    return (
        pl.when(freq >= 7).then(pl.lit("7+")).otherwise(freq.cast(pl.Int64).cast(pl.String))
    ).alias("bucket")


def holdout_validation(
    profile_at: ProfileAt,
    actual_purchases: Callable[[dt.date, int, CustomerSample | None], pl.DataFrame],
    as_of: dt.date,
    cfg: ValuationConfig,
    models: Sequence[str] = ("bgnbd",),
    holdout_days: int | None = None,
    sample: CustomerSample | None = None,
) -> HoldoutResult:
    """Fit each model at ``as_of - H`` and compare with the purchases of the next H days.

    Parameters
    ----------
    profile_at
        Returns the customer profile (``customer_id`` and the BTYD columns) at a cut date, of a
        sample's customers.
    actual_purchases
        ``(start, days, sample) ->`` frame of ``customer_id``, ``day`` (offset): one row per
        distinct purchase day in ``[start, start + days)``, e.g. :func:`purchase_days`
        collected.
    as_of
        The run's as-of date; the holdout window ends here.
    cfg
        Valuation config (penalizer, default ``holdout_days``).
    models
        Purchase model names to compare.
    holdout_days
        Override of ``cfg.holdout_days``.
    sample
        Compare on these customers only (None: everyone): the models' ranking and their
        per-customer errors need a few hundred thousand customers, not ten million.

    Returns
    -------
    HoldoutResult

    Raises
    ------
    ValuationError
        When the window is empty or no customer purchased before the cut.
    """
    h = cfg.holdout_days if holdout_days is None else holdout_days
    if h <= 0:
        raise ValuationError(f"holdout_days={h} should be > 0 for a holdout validation")
    cut = as_of - dt.timedelta(days=h)
    profile = profile_at(cut, sample)
    X = btyd_frame(profile).with_columns(profile.get_column("customer_id"))
    X = X.filter(pl.col("fit"))
    if X.height < 10:
        raise ValuationError(
            f"holdout: only {X.height} customer(s) purchased before the cut {cut}; use a "
            "shorter valuation.holdout_days"
        )
    actual_days = actual_purchases(cut, h, sample)
    counts = actual_days.group_by("customer_id").agg(pl.len().cast(pl.Int64).alias("actual"))
    X = X.join(counts, on="customer_id", how="left", maintain_order="left").with_columns(
        pl.col("actual").fill_null(0)
    )
    actual = X.get_column("actual").to_numpy().astype(np.float64)
    grid = np.unique(np.linspace(0, h, min(h, CURVE_POINTS) + 1).round().astype(np.int64))[1:]
    kept = actual_days.join(X.select("customer_id"), on="customer_id", how="semi")
    per_day = np.bincount(kept.get_column("day").to_numpy(), minlength=h)[:h]
    cum_actual = np.cumsum(per_day)[grid - 1].astype(np.float64)
    curve = {"day": grid, "actual": cum_actual}
    metrics: dict[str, dict[str, Any] | None] = {}
    calibration: dict[str, pl.DataFrame] = {}
    errors: dict[str, str] = {}
    for name in models:
        try:
            model: PurchaseModel = scoring_model(name, cfg.penalizer).fit(X)
            cum = model.expected_purchases(X, grid.astype(np.float64))
        except ValuationError as e:
            metrics[name], errors[name] = None, str(e)
            continue
        pred = cum[:, -1]
        metrics[name] = {
            "mae": float(np.mean(np.abs(pred - actual))),
            "total_predicted": float(pred.sum()),
            "total_actual": float(actual.sum()),
            "log_likelihood": model.log_likelihood_,
            "params": dict(model.params_),
        }
        calibration[name] = (
            X.select(_bucket(pl.col("frequency")))
            .with_columns(pl.Series("predicted", pred), pl.Series("actual", actual))
            .group_by("bucket")
            .agg(
                pl.len().cast(pl.Int64).alias("n"),
                pl.col("predicted").mean().alias("mean_predicted"),
                pl.col("actual").mean().alias("mean_actual"),
            )
            .join(pl.DataFrame({"bucket": list(FREQUENCY_BUCKETS)}), on="bucket", how="right")
            .select(
                "bucket",
                pl.col("n").fill_null(0),
                "mean_predicted",
                "mean_actual",
            )
        )
        curve[name] = cum.sum(axis=0)
    return HoldoutResult(
        cut=cut,
        holdout_days=h,
        n_customers=X.height,
        metrics=metrics,
        calibration=calibration,
        curve=pl.DataFrame(curve),
        errors=errors,
    )


def plot_holdout(result: HoldoutResult, path: Path) -> Path:
    """Write a PNG of predicted vs actual cumulative repeat purchases over the holdout days.

    Parameters
    ----------
    result
        A :func:`holdout_validation` result.
    path
        Where to write the PNG (parent directories are created).

    Returns
    -------
    Path
        ``path``.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(7, 4.5), dpi=110)
    ax = fig.add_subplot()
    day = result.curve.get_column("day").to_numpy()
    ax.plot(day, result.curve.get_column("actual").to_numpy(), color="black", lw=2, label="actual")
    for name in result.metrics:
        if name in result.curve.columns:
            mae = (result.metrics[name] or {}).get("mae", float("nan"))
            ax.plot(
                day,
                result.curve.get_column(name).to_numpy(),
                ls="--",
                label=f"{name} (MAE {mae:.3f})",
            )
    ax.set_xlabel(f"days after the cut {result.cut.isoformat()}")
    ax.set_ylabel("cumulative repeat purchases")
    ax.set_title(f"Holdout: {result.n_customers:,} customers, {result.holdout_days} days")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path
