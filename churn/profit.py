"""What a retention offer is worth: expected profit per customer, the profit curve and EMPC.

The offer model is Verbraken, Verbeke & Baesens (2013), "A novel profit maximizing metric for
measuring classification performance of customer churn prediction models": contacting a
customer costs ``f`` (``contact_cost``); a would-be churner accepts the incentive ``d``
(``offer_cost``) with probability ``gamma`` and stays, so their CLV is kept minus ``d``; a
customer who would have stayed accepts too, and ``d`` is spent for nothing. The expected profit
of contacting customer ``i`` with churn probability ``p`` and value ``clv`` is

    gamma * p * (clv - d) - (1 - p) * d - f

with ``gamma`` at its mean. Each term is one customer's, so the contact set that maximises the
total is everyone with a positive term. EMPC (expected maximum profit) scores a ranking on
known outcomes: for each ``gamma`` of a Beta distribution, the best share to contact and its
profit per customer, averaged over ``gamma``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import beta as beta_dist

from crm_engine.config import RetentionConfig
from crm_engine.parts import FrameParts, Parts, count_rows, top_sums

__all__ = ["EMPC_GAMMA_POINTS", "Empc", "empc", "expected_profit", "planned_curve", "profit_curve"]

EMPC_GAMMA_POINTS = 200
"""Acceptance rates the EMPC averages over (equal-probability quantiles of the Beta)."""


def expected_profit(p: np.ndarray, clv: np.ndarray, terms: RetentionConfig) -> np.ndarray:
    """Expected profit of contacting each customer: ``gamma p (clv - d) - (1 - p) d - f``.

    ``clv`` NaN (no value known) gives NaN.
    """
    p = np.asarray(p, dtype=np.float64)
    clv = np.asarray(clv, dtype=np.float64)
    d, f = terms.offer_cost, terms.contact_cost
    return terms.accept_rate * p * (clv - d) - (1.0 - p) * d - f


@dataclass(frozen=True)
class Empc:
    """EMPC of a ranking on known outcomes (Verbraken et al. 2013), per customer ranked.

    Attributes
    ----------
    empc
        Expected maximum profit per customer (currency), over the Beta of ``gamma``.
    share
        Expected profit-optimal share of customers to contact (0-1).
    profit_at_mean
        Profit per customer of the best share at the mean acceptance rate.
    share_at_mean
        That best share (0-1).
    customer_value
        The constant CLV the outcomes were valued at.
    """

    empc: float
    share: float
    profit_at_mean: float
    share_at_mean: float
    customer_value: float


def _cumulative(
    y: np.ndarray, p: np.ndarray, clv: float, terms: RetentionConfig
) -> tuple[np.ndarray, np.ndarray]:
    """``(A, B)`` with profit of contacting the top ``k`` = ``gamma A[k] - B[k]`` (k = 0..n)."""
    y = np.asarray(y, dtype=np.float64)[np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")]
    d, f = terms.offer_cost, terms.contact_cost
    a = np.concatenate([[0.0], np.cumsum(y * (clv - d))])
    b = np.concatenate([[0.0], np.cumsum((1.0 - y) * d + f)])
    return a, b


def _check(y: np.ndarray, p: np.ndarray, clv: float) -> None:
    if np.size(y) != np.size(p) or np.size(y) == 0:
        raise ValueError(f"need as many outcomes as probabilities, got {np.size(y)}, {np.size(p)}")
    if not np.isfinite(clv):
        raise ValueError(f"customer value should be a finite number, got {clv}")


def empc(y: np.ndarray, p: np.ndarray, clv: float, terms: RetentionConfig) -> Empc:
    """EMPC of ranking by ``p`` the customers with outcomes ``y`` (1 = churned), all worth ``clv``.

    For each of :data:`EMPC_GAMMA_POINTS` acceptance rates (equal-probability quantiles of
    Beta(``accept_rate * accept_concentration``, ``(1 - accept_rate) * accept_concentration``)):
    the profit of contacting the top ``k`` by ``p``, maximised over ``k`` (``k = 0``, nobody,
    gives 0); the maxima and their shares are averaged.
    """
    _check(y, p, clv)
    a, b = _cumulative(y, p, clv, terms)
    n = a.size - 1
    mean, conc = terms.accept_rate, terms.accept_concentration
    if mean >= 1.0:
        gammas = np.ones(1)
    else:
        q = (np.arange(EMPC_GAMMA_POINTS) + 0.5) / EMPC_GAMMA_POINTS
        gammas = beta_dist.ppf(q, mean * conc, (1.0 - mean) * conc)
    best, shares = np.empty(gammas.size), np.empty(gammas.size)
    for i, g in enumerate(gammas):
        profit = g * a - b
        k = int(np.argmax(profit))
        best[i], shares[i] = profit[k], k
    at_mean = mean * a - b
    k_mean = int(np.argmax(at_mean))
    return Empc(
        empc=float(best.mean() / n),
        share=float(shares.mean() / n),
        profit_at_mean=float(at_mean[k_mean] / n),
        share_at_mean=k_mean / n,
        customer_value=float(clv),
    )


def profit_curve(
    y: np.ndarray, p: np.ndarray, clv: float, terms: RetentionConfig, points: int = 101
) -> pl.DataFrame:
    """Profit per customer of contacting the top share by ``p``, at the mean acceptance rate.

    Returns
    -------
    polars.DataFrame
        ``share`` (0-1: ``points`` evenly spaced, and the best share) and
        ``profit_per_customer`` (currency): aggregates of the outcomes only, no customer rows.
    """
    _check(y, p, clv)
    a, b = _cumulative(y, p, clv, terms)
    n = a.size - 1
    profit = terms.accept_rate * a - b
    k = np.round(np.linspace(0.0, 1.0, points) * n).astype(np.int64)
    k = np.unique(np.append(k, int(np.argmax(profit))))  # the peak itself, whatever the grid
    return pl.DataFrame({"share": k / n, "profit_per_customer": profit[k] / n})


def planned_curve(
    profit: Parts | np.ndarray, points: int = 101, column: str = "retention_profit"
) -> pl.DataFrame:
    """Total expected profit of contacting the top share of customers by their own profit.

    ``profit`` is :func:`expected_profit` of the customers who could be contacted: an array,
    or the ``column`` of parts of everyone (the churn scores where they lie: the totals are
    aggregates, :func:`crm_engine.parts.top_sums`). Missing and non-finite profits are left
    out. The curve rises while the profits are positive and peaks at the profit-optimal
    contact set.

    Returns
    -------
    polars.DataFrame
        ``share`` (0-1) and ``expected_profit`` (currency): aggregates, no customer rows.
    """
    if not isinstance(profit, Parts):
        profit = FrameParts(pl.DataFrame({column: np.asarray(profit, dtype=np.float64)}))
    finite = pl.col(column).is_finite()
    n, best = count_rows(profit, finite, finite & (pl.col(column) > 0))
    if n == 0:
        return pl.DataFrame(schema={"share": pl.Float64, "expected_profit": pl.Float64})
    k = np.unique(np.round(np.linspace(0.0, 1.0, points) * n).astype(np.int64))
    k = np.unique(np.append(k, best))  # the peak itself, whatever the grid
    totals = top_sums(profit, column, k.tolist())
    return pl.DataFrame({"share": k / n, "expected_profit": totals})
