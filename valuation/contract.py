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

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

import autograd.numpy as anp
import numpy as np
import polars as pl
from autograd.scipy.special import betaln as abetaln
from scipy.special import betaln

from valuation.base import ValuationError
from valuation.clv import DAYS_PER_MONTH, discounted_clv, month_ends, monthly_discount_rate
from valuation.optimize import autograd_objective, minimize_nll

__all__ = [
    "SBG",
    "ContractRetention",
    "contract_ends",
    "contract_lifetimes",
    "contract_scores",
    "fit_sbg",
]

SBG = "sbg"
"""``value_model`` of a customer valued by the contract retention model."""
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

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: object) -> ContractRetention:
        """Rebuild from :meth:`to_dict`; ``ValueError`` unless it holds positive parameters."""
        if not isinstance(d, dict) or set(d) != {f.name for f in dataclasses.fields(cls)}:
            raise ValueError(f"not a contract retention model: {d!r}"[:200])
        out = cls(**d)
        if not (out.alpha > 0 and out.beta > 0):
            raise ValueError(f"contract retention parameters must be positive: {d!r}")
        return out

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


def _negative_log_likelihood(
    log_params: np.ndarray,
    entry: np.ndarray,
    months: np.ndarray,
    churned: np.ndarray,
    w: np.ndarray,
) -> Any:
    """Mean negative log-likelihood per customer (autograd-differentiable; ``w`` sums to 1)."""
    a, b = anp.exp(log_params[0]), anp.exp(log_params[1])
    base = abetaln(a, b)
    died = abetaln(a + 1.0, b + months) - base  # P(T = months + 1)
    alive = abetaln(a, b + months) - base  # S(months)
    ll = anp.where(churned, died, alive) - (abetaln(a, b + entry) - base)
    return -anp.sum(w * ll)


def fit_sbg(lifetimes: pl.DataFrame) -> ContractRetention:
    """Maximum-likelihood sBG on :func:`contract_lifetimes` rows (the BTYD models' optimiser,
    :func:`valuation.optimize.minimize_nll`, on log-parameters with autograd's gradient).

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
            f"(column plan_type) observed before as_of, {n_churned:,} churned (column "
            "churn_date)"
        )
    entry = lifetimes["entry"].to_numpy().astype(np.float64)
    months = np.maximum(lifetimes["months"].to_numpy().astype(np.float64), entry)
    fun = autograd_objective(_negative_log_likelihood, (entry, months, churned, w / w.sum()))
    try:
        x, _ = minimize_nll(fun, 2, "sBG")
    except Exception as e:  # lifetimes' ConvergenceError
        raise ValuationError(f"the sBG retention fit did not converge: {e}") from None
    a, b = np.exp(x)
    ll = -fun(x)[0] * w.sum()
    return ContractRetention(
        alpha=float(a),
        beta=float(b),
        n_customers=n,
        n_churned=n_churned,
        log_likelihood=float(ll),
    )


def contract_ends(
    profile: pl.DataFrame, values: pl.DataFrame, as_of: dt.date, months: int = 12
) -> list[dict[str, Any]]:
    """Postpaid minimum terms ending in each of the ``months`` calendar months from ``as_of``'s:
    ``month`` (``YYYY-MM``), ``customers`` and the sum of their ``clv`` (what the renewal
    puts in play). Reads ``profile.contract_days_left`` (days from ``as_of`` to the term's
    end; null for prepaid and without a date); empty when no term ends in that time."""
    if "contract_days_left" not in profile.columns:
        return []
    first = as_of.replace(day=1)
    last = (pl.Series([first]).dt.offset_by(f"{months}mo")).item()
    ends = (
        profile.select(
            "customer_id",
            (pl.lit(as_of) + pl.duration(days=pl.col("contract_days_left"))).alias("end"),
        )
        .filter(pl.col("end").is_between(pl.lit(as_of), pl.lit(last), closed="left"))
        .join(values.select("customer_id", "clv"), on="customer_id")
        .group_by(pl.col("end").dt.strftime("%Y-%m").alias("month"))
        .agg(pl.len().cast(pl.Int64).alias("customers"), pl.col("clv").sum())
        .sort("month")
    )
    return ends.to_dicts()


def contract_scores(
    retention: ContractRetention,
    tenure_days: np.ndarray,
    revenue_365d: np.ndarray,
    paying_days: np.ndarray,
    horizon_days: int,
    annual_discount_rate: float,
    margin: float,
) -> dict[str, np.ndarray]:
    """Values of postpaid customers still there: retention ahead x their monthly bill.

    ``expected_avg_value`` is the trailing monthly bill: ``revenue_365d`` over the bills it
    holds, one a month from the first payment in the data ``paying_days`` before the cut
    (BTYD's ``T``), at most 12 and at least one (so a history shorter than a year, or a
    customer who signed up before the data starts, is not read as a smaller bill);
    ``expected_purchases`` the bills expected over the horizon, ``sum_k S(t0 + k) / S(t0)``
    (the last month pro rata); ``clv = margin x sum_k bill x S(t0 + k) / S(t0) / (1 + d)^k``;
    ``p_alive`` the probability of still being a customer next month, ``S(t0 + 1) / S(t0)``.
    """
    tenure = np.maximum(np.asarray(tenure_days, dtype=np.float64), 0.0)
    paying = np.nan_to_num(np.asarray(paying_days, dtype=np.float64), nan=0.0)
    bills_held = np.clip(np.floor(np.maximum(paying, 0.0) / DAYS_PER_MONTH) + 1, 1, 12)
    bill = np.asarray(revenue_365d, dtype=np.float64) / bills_held
    bill = np.maximum(np.nan_to_num(bill, nan=0.0), 0.0)
    ends = month_ends(horizon_days)
    share = np.diff(ends, prepend=0.0) / DAYS_PER_MONTH
    ahead = retention.retention_ahead(np.floor(tenure / DAYS_PER_MONTH), ends.size)
    bills = np.cumsum(ahead * share, axis=1)
    rate = monthly_discount_rate(annual_discount_rate)
    return {
        "p_alive": ahead[:, 0],
        "expected_purchases": bills[:, -1],
        "expected_avg_value": bill,
        "clv": np.maximum(discounted_clv(bills, bill, margin, rate), 0.0),
    }
