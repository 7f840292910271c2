"""Discounted customer lifetime value over a horizon in days, vectorised over customers."""

from __future__ import annotations

import math

import numpy as np

from valuation.base import FrameLike, PurchaseModel

DAYS_PER_MONTH = 30


def monthly_discount_rate(annual_rate: float) -> float:
    """Monthly rate equivalent to an annual one: ``(1 + annual) ** (1 / 12) - 1``."""
    if annual_rate < 0 or annual_rate >= 1:
        raise ValueError(f"annual_rate={annual_rate} should be in [0, 1)")
    return (1.0 + annual_rate) ** (1.0 / 12.0) - 1.0


def month_ends(horizon_days: int) -> np.ndarray:
    """Day offsets that close each discounting month: 30, 60, ..., capped at the horizon.

    ``ceil(horizon_days / 30)`` months; the last one ends at ``horizon_days`` (365 days give
    twelve 30-day months and a 13th of 5 days).
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days={horizon_days} should be > 0")
    n = math.ceil(horizon_days / DAYS_PER_MONTH)
    return np.minimum(np.arange(1, n + 1) * DAYS_PER_MONTH, horizon_days).astype(np.float64)


def discounted_clv(
    cumulative_purchases: np.ndarray,
    expected_avg_value: np.ndarray,
    margin: float,
    monthly_rate: float,
) -> np.ndarray:
    """Discounted margin from cumulative expected purchases at the month ends.

    ``clv = sum_m (E[N(t_m)] - E[N(t_{m-1})]) * value * margin / (1 + d) ** m`` with
    ``E[N(t_0)] = 0``.

    Parameters
    ----------
    cumulative_purchases
        Shape ``(n_customers, n_months)``: expected purchases by the end of each month.
    expected_avg_value
        Shape ``(n_customers,)``: expected spend per purchase.
    margin
        Share of revenue that is profit.
    monthly_rate
        Monthly discount rate ``d``.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_customers,)``.
    """
    cum = np.asarray(cumulative_purchases, dtype=np.float64)
    if cum.ndim != 2:
        raise ValueError(f"cumulative_purchases must be 2-D, got shape {cum.shape}")
    increments = np.diff(cum, axis=1, prepend=0.0)
    # Tiny negative increments come from floating point in the hypergeometric terms.
    np.maximum(increments, 0.0, out=increments)
    factors = (1.0 + monthly_rate) ** -np.arange(1, cum.shape[1] + 1, dtype=np.float64)
    purchases_pv = increments @ factors
    return purchases_pv * np.asarray(expected_avg_value, dtype=np.float64) * margin


def customer_lifetime_value(
    purchase_model: PurchaseModel,
    X: FrameLike,
    expected_avg_value: np.ndarray,
    horizon_days: int,
    annual_discount_rate: float,
    margin: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected purchases over the horizon and discounted CLV per customer.

    Parameters
    ----------
    purchase_model
        A fitted purchase model.
    X
        Columns ``frequency``, ``recency``, ``T`` (days).
    expected_avg_value
        Expected spend per purchase (from the spend model).
    horizon_days
        CLV horizon.
    annual_discount_rate
        Annual discount rate, converted to monthly.
    margin
        Profit share of revenue.

    Returns
    -------
    expected_purchases, clv
        Both shape ``(n_customers,)``.
    """
    ends = month_ends(horizon_days)
    cum = purchase_model.expected_purchases(X, ends)
    rate = monthly_discount_rate(annual_discount_rate)
    clv = discounted_clv(cum, expected_avg_value, margin, rate)
    return cum[:, -1], clv
