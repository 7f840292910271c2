"""Contractual retention for postpaid customers: the shifted-beta-geometric model (sBG).

A postpaid customer pays every month until they cancel, and the cancellation is seen
(``churn_date``). Fader & Hardie (2007), "How to project customer retention": each customer
has a constant monthly churn probability ``theta``, drawn from Beta(``alpha``, ``beta``) across
customers, so the population's retention rises with tenure as the likely leavers go first:

    P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta),   t = 1, 2, ...
    S(t)     = B(alpha, beta + t) / B(alpha, beta)

The data starts after many customers signed up: a customer observed from tenure ``entry``
months is in the data because they survived that long, so the likelihood conditions on it
(left truncation, ``/ S(entry)``); one still a customer at ``as_of`` is censored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import betaln

from valuation.base import ValuationError

__all__ = [
    "DAYS_PER_MONTH",
    "ContractRetention",
    "contract_lifetimes",
    "fit_sbg",
]

DAYS_PER_MONTH = 365.25 / 12
MIN_CUSTOMERS = 50
"""Postpaid customers needed to fit the retention model, at least (and some who churned)."""


def _log_survival(alpha: float, beta: float, t: np.ndarray) -> np.ndarray:
    return np.asarray(betaln(alpha, beta + t) - betaln(alpha, beta))


@dataclass(frozen=True)
class ContractRetention:
    """A fitted sBG: Beta(``alpha``, ``beta``) monthly churn probabilities.

    Attributes
    ----------
    alpha, beta
        The Beta parameters; mean monthly churn ``alpha / (alpha + beta)``.
    n_customers, n_churned
        Customers the fit saw, and how many of them churned while observed.
    log_likelihood
        At the fitted parameters (with the truncation and censoring terms).
    """

    alpha: float
    beta: float
    n_customers: int
    n_churned: int
    log_likelihood: float

    def survival(self, months: np.ndarray | float) -> np.ndarray:
        """``S(t)``: share of a new cohort still a customer after ``t`` months."""
        return np.exp(_log_survival(self.alpha, self.beta, np.asarray(months, dtype=np.float64)))

    def retention_ahead(self, tenure_months: np.ndarray, months: int) -> np.ndarray:
        """``S(t0 + k) / S(t0)`` for ``k = 1..months``: the survival ahead of customers still
        there at tenure ``t0`` (whole months), shape ``(n, months)``."""
        t0 = np.asarray(tenure_months, dtype=np.float64)[:, None]
        k = np.arange(1, months + 1, dtype=np.float64)[None, :]
        return np.exp(
            _log_survival(self.alpha, self.beta, t0 + k) - _log_survival(self.alpha, self.beta, t0)
        )


def contract_lifetimes(
    customers: pl.LazyFrame, as_of: dt.date, observed_from: dt.date
) -> pl.DataFrame:
    """Whole-month lifetimes of the postpaid customers signed up before ``as_of``.

    Returns
    -------
    polars.DataFrame
        ``entry`` (months survived before ``observed_from``, when the data starts), ``months``
        (months survived by the churn or by ``as_of``), ``churned`` (churned before
        ``as_of``): one row per customer, grouped with a ``customers`` count per distinct row.
    """
    start, end = pl.lit(observed_from), pl.lit(as_of)
    signup = pl.col("signup_date")
    left = pl.when(pl.col("churn_date") < end).then(pl.col("churn_date")).otherwise(end)
    days = lambda a, b: (b - a).dt.total_days()  # noqa: E731
    return (
        customers.filter((pl.col("plan_type") == "postpaid") & (signup < end))
        .filter(pl.col("churn_date").is_null() | (pl.col("churn_date") > signup))
        .select(
            (days(signup, pl.max_horizontal(signup, start)) / DAYS_PER_MONTH)
            .floor()
            .cast(pl.Int64)
            .alias("entry"),
            (days(signup, left) / DAYS_PER_MONTH).floor().cast(pl.Int64).alias("months"),
            (pl.col("churn_date") < end).fill_null(False).alias("churned"),
        )
        .group_by("entry", "months", "churned")
        .agg(pl.len().cast(pl.Int64).alias("customers"))
        .sort("entry", "months", "churned")
        .collect()
    )


def fit_sbg(lifetimes: pl.DataFrame) -> ContractRetention:
    """Maximum-likelihood sBG on :func:`contract_lifetimes` rows (scipy L-BFGS-B on log params).

    A churn in month ``months + 1`` contributes ``P(T = months + 1) / S(entry)``, a customer
    still there ``S(months) / S(entry)``.

    Raises
    ------
    ValuationError
        Too few postpaid customers or no churn among them (nothing to learn a curve from), or
        an optimiser that does not converge.
    """
    n = int(lifetimes["customers"].sum()) if lifetimes.height else 0
    churned = lifetimes["churned"].to_numpy() if lifetimes.height else np.zeros(0, bool)
    w = lifetimes["customers"].to_numpy().astype(np.float64) if lifetimes.height else np.zeros(0)
    n_churned = int(w[churned].sum())
    if n < MIN_CUSTOMERS or n_churned == 0:
        raise ValuationError(
            f"the contract retention model needs at least {MIN_CUSTOMERS} postpaid customers "
            f"and some churn among them; table customers has {n:,} postpaid customers "
            f"observed, {n_churned:,} churned"
        )
    entry = lifetimes["entry"].to_numpy().astype(np.float64)
    months = np.maximum(lifetimes["months"].to_numpy().astype(np.float64), entry)

    def nll(x: np.ndarray) -> float:
        a, b = np.exp(x)
        died = betaln(a + 1, b + months) - betaln(a, b)  # P(T = months + 1)
        alive = _log_survival(a, b, months)
        ll = np.where(churned, died, alive) - _log_survival(a, b, entry)
        return float(-(w * ll).sum())

    res = minimize(nll, x0=np.log([1.0, 10.0]), method="L-BFGS-B", bounds=[(-9.0, 9.0)] * 2)
    if not res.success or not np.isfinite(res.fun):
        raise ValuationError(f"the sBG retention fit did not converge: {res.message}")
    a, b = np.exp(res.x)
    return ContractRetention(
        alpha=float(a),
        beta=float(b),
        n_customers=n,
        n_churned=n_churned,
        log_likelihood=float(-res.fun),
    )
