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
import functools
from typing import Any, ClassVar

import autograd.numpy as anp
import numpy as np
import polars as pl
from autograd.scipy.special import betaln as abetaln
from scipy.special import betaln
from sklearn.utils.validation import check_is_fitted

from crm_engine.config import ValuationConfig
from features import CustomerSample, PointInTime
from valuation.base import ValuationError, ValueEstimator
from valuation.clv import DAYS_PER_MONTH, discounted_clv, month_ends, monthly_discount_rate
from valuation.optimize import autograd_objective, minimize_nll

__all__ = [
    "SBG",
    "ContractModel",
    "ContractRetention",
    "SBGModel",
    "contract_ends",
    "contract_lifetimes",
    "contract_scores",
    "first_day",
    "fit_sbg",
    "monthly_bill",
]

SBG = "sbg"
"""``value_model`` of a customer valued by the contract retention model."""
MIN_CUSTOMERS = 50
"""Postpaid customers needed to fit the retention model, at least (and some who churned)."""


def first_day(at: PointInTime) -> dt.date:
    """The data's first day (the transactions'): postpaid lifetimes before it are
    left-truncated.

    Raises
    ------
    ValuationError
        When the transactions have no rows.
    """
    if at.start.first_day is None:
        raise ValuationError("table transactions has no rows: the data's start is unknown")
    return at.start.first_day


class ContractModel(ValueEstimator):
    """Base of the postpaid retention models: how likely a customer still there at a cut is to
    still be there (and billed) after each of the next months.

    A subclass builds its training rows from what is known before a point in time
    (:meth:`training_frame` of a :class:`features.PointInTime`), learns plain numbers in
    :meth:`fit` and projects each customer's survival from their profile row
    (:meth:`survival_ahead`); the value is :func:`contract_scores`: that survival times the
    customer's monthly bill.
    """

    @classmethod
    def from_config(cls, cfg: ValuationConfig) -> ContractModel:
        """A new, unfitted model with the hyperparameters of the ``[valuation]`` section."""
        return cls()

    def training_frame(self, at: PointInTime) -> pl.DataFrame:
        """The rows :meth:`fit` learns from, from what is known before ``at.as_of``."""
        raise NotImplementedError

    def profiles_read(self, at: PointInTime) -> tuple[list[dt.date], CustomerSample | None]:
        """The cuts whose profiles :meth:`training_frame` reads, and of which customers (the
        sBG reads none: it counts the transactions)."""
        return [], None

    def fit(self, X: pl.DataFrame, y: None = None) -> ContractModel:
        raise NotImplementedError

    def fit_at(self, at: PointInTime) -> ContractModel:
        """:meth:`fit` on :meth:`training_frame`: the model as known at ``at.as_of``."""
        return self.fit(self.training_frame(at))

    def survival_ahead(self, profile: pl.DataFrame, months: int) -> np.ndarray:
        """Shape ``(n, months)``: the chance that each customer of ``profile`` (still there at
        its cut) is still a customer at the end of month ``k = 1..months`` after it."""
        raise NotImplementedError

    def input_columns(self) -> tuple[str, ...]:
        """Profile columns :meth:`survival_ahead` reads."""
        raise NotImplementedError

    def summary(self) -> dict[str, float]:
        """The fitted model in numbers for the report (with ``retention_12m``)."""
        raise NotImplementedError

    def input_example(self) -> dict[str, list[Any]]:
        """Made-up values of :meth:`input_columns` for two customers (a prepaid one and a
        postpaid one): the logged model's input example, never a real row."""
        raise NotImplementedError


def _log_survival(alpha: float, beta: float, t: np.ndarray) -> np.ndarray:
    return np.asarray(betaln(alpha, beta + t) - betaln(alpha, beta))


class SBGModel(ContractModel):
    """The shifted-beta-geometric retention model: Beta(``alpha``, ``beta``) monthly churn
    probabilities across customers, one cohort curve of tenure.

    Attributes
    ----------
    params_ : dict[str, float]
        ``alpha`` and ``beta``; mean monthly churn ``alpha / (alpha + beta)``.
    n_customers_, n_churned_ : int
        Customers the fit saw, and how many of them churned while observed.
    log_likelihood_ : float
        At the fitted parameters (with the truncation and censoring terms).
    """

    model_name: ClassVar[str] = SBG
    _param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta")

    def __init__(self) -> None:
        pass

    @property
    def alpha(self) -> float:
        check_is_fitted(self, "params_")
        return float(self.params_["alpha"])

    @property
    def beta(self) -> float:
        check_is_fitted(self, "params_")
        return float(self.params_["beta"])

    def training_frame(self, at: PointInTime) -> pl.DataFrame:
        """:func:`contract_lifetimes` at ``at.as_of``, left-truncated at the data's start:
        counted where the customers lie (:meth:`PointInTime.aggregated
        <features.PointInTime.aggregated>`, on Spark the executors) and added up here."""
        count = functools.partial(contract_lifetimes, as_of=at.as_of, observed_from=first_day(at))
        parts = at.aggregated("customers", count)
        return (
            parts.group_by("entry", "months", "churned")
            .agg(pl.col("customers").sum())
            .sort("entry", "months", "churned")
        )

    def fit(self, X: pl.DataFrame, y: None = None) -> SBGModel:
        """Maximum-likelihood sBG on :func:`contract_lifetimes` rows (see :func:`fit_sbg`)."""
        alpha, beta, n, n_churned, ll = _fit_sbg(X)
        if not (alpha > 0 and beta > 0):
            raise ValuationError(f"the sBG retention fit gave alpha={alpha}, beta={beta}")
        self.params_ = {"alpha": alpha, "beta": beta}
        self.n_customers_ = n
        self.n_churned_ = n_churned
        self.log_likelihood_ = ll
        return self

    def survival(self, months: np.ndarray | float) -> np.ndarray:
        """``S(t)``: share of a new cohort still a customer after ``t`` months."""
        t = np.asarray(months, dtype=np.float64)
        return np.exp(_log_survival(self.alpha, self.beta, t))

    def retention_ahead(self, tenure_months: np.ndarray, months: int) -> np.ndarray:
        """``S(t0 + k) / S(t0)`` for ``k = 1..months``: the survival ahead of customers still
        there at tenure ``t0`` (whole months), shape ``(n, months)``."""
        a, b = self.alpha, self.beta
        t0 = np.asarray(tenure_months, dtype=np.float64)[:, None]
        k = np.arange(1, months + 1, dtype=np.float64)[None, :]
        return np.exp(_log_survival(a, b, t0 + k) - _log_survival(a, b, t0))

    def survival_ahead(self, profile: pl.DataFrame, months: int) -> np.ndarray:
        """:meth:`retention_ahead` at each customer's whole months of ``tenure_days``."""
        tenure = profile.get_column("tenure_days").cast(pl.Float64).fill_null(0.0).to_numpy()
        tenure = np.maximum(tenure, 0.0)
        return self.retention_ahead(np.floor(tenure / DAYS_PER_MONTH), months)

    def input_columns(self) -> tuple[str, ...]:
        return ("tenure_days",)

    def input_example(self) -> dict[str, list[Any]]:
        return {"tenure_days": [45.0, 400.0]}

    def summary(self) -> dict[str, float]:
        """``alpha``, ``beta``, ``n_customers``, ``n_churned``, ``log_likelihood`` and
        ``retention_12m`` (a new customer's 12-month retention)."""
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "n_customers": self.n_customers_,
            "n_churned": self.n_churned_,
            "log_likelihood": self.log_likelihood_,
            "retention_12m": float(self.survival(12.0)),
        }

    @classmethod
    def from_legacy(cls, d: object) -> SBGModel:
        """Rebuild from the plain dict of the dataclass this model replaced (``alpha``,
        ``beta``, ``n_customers``, ``n_churned``, ``log_likelihood``): CLV models stored
        before it still load."""
        keys = {"alpha", "beta", "n_customers", "n_churned", "log_likelihood"}
        if not isinstance(d, dict) or set(d) != keys:
            raise ValueError(f"not a contract retention model: {d!r}"[:200])
        return cls.from_dict(
            {
                "model": SBG,
                "init": {},
                "fitted": {
                    "params_": {"alpha": d["alpha"], "beta": d["beta"]},
                    "n_customers_": d["n_customers"],
                    "n_churned_": d["n_churned"],
                    "log_likelihood_": d["log_likelihood"],
                },
            }
        )


ContractRetention = SBGModel
"""The sBG model's former name."""


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


def fit_sbg(lifetimes: pl.DataFrame) -> SBGModel:
    """A fitted :class:`SBGModel` on :func:`contract_lifetimes` rows."""
    return SBGModel().fit(lifetimes)


def _fit_sbg(lifetimes: pl.DataFrame) -> tuple[float, float, int, int, float]:
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
    return float(a), float(b), n, n_churned, float(ll)


def contract_ends(
    profile: pl.DataFrame | pl.LazyFrame,
    values: pl.DataFrame | pl.LazyFrame,
    as_of: dt.date,
    months: int = 12,
) -> list[dict[str, Any]]:
    """Postpaid minimum terms ending in each of the ``months`` calendar months from ``as_of``'s:
    ``month`` (``YYYY-MM``), ``customers`` and the sum of their ``clv`` (what the renewal
    puts in play). Reads ``profile.contract_days_left`` (days from ``as_of`` to the term's
    end; null for prepaid and without a date); empty when no term ends in that time."""
    if "contract_days_left" not in profile.collect_schema().names():
        return []
    first = as_of.replace(day=1)
    last = (pl.Series([first]).dt.offset_by(f"{months}mo")).item()
    ends = (
        profile.lazy()
        .select(
            "customer_id",
            (pl.lit(as_of) + pl.duration(days=pl.col("contract_days_left"))).alias("end"),
        )
        .filter(pl.col("end").is_between(pl.lit(as_of), pl.lit(last), closed="left"))
        .collect()
    )
    # of the values (a plan over the executors' files with Spark) only these customers' CLV
    ending = ends.lazy().select("customer_id")
    clv = values.lazy().select("customer_id", "clv").join(ending, on="customer_id", how="semi")
    ends = (
        ends.join(clv.collect(), on="customer_id", maintain_order="left")
        .group_by(pl.col("end").dt.strftime("%Y-%m").alias("month"), maintain_order=True)
        .agg(pl.len().cast(pl.Int64).alias("customers"), pl.col("clv").sum())
        .sort("month")
    )
    return ends.to_dicts()


def monthly_bill(revenue_365d: np.ndarray, paying_days: np.ndarray) -> np.ndarray:
    """The trailing monthly bill: ``revenue_365d`` over the bills it holds, one a month from the
    first payment in the data ``paying_days`` before the cut (BTYD's ``T``), at most 12 and at
    least one (so a history shorter than a year, or a customer who signed up before the data
    starts, is not read as a smaller bill)."""
    paying = np.nan_to_num(np.asarray(paying_days, dtype=np.float64), nan=0.0)
    bills_held = np.clip(np.floor(np.maximum(paying, 0.0) / DAYS_PER_MONTH) + 1, 1, 12)
    bill = np.asarray(revenue_365d, dtype=np.float64) / bills_held
    return np.maximum(np.nan_to_num(bill, nan=0.0), 0.0)


def contract_scores(
    model: ContractModel,
    profile: pl.DataFrame,
    paying_days: np.ndarray,
    horizon_days: int,
    annual_discount_rate: float,
    margin: float,
) -> dict[str, np.ndarray]:
    """Values of postpaid customers still there: survival ahead x their monthly bill.

    ``profile`` holds the customers' rows (``revenue_365d`` and what ``model`` reads);
    ``expected_avg_value`` is :func:`monthly_bill`; ``expected_purchases`` the bills expected
    over the horizon, ``sum_k S_k`` of :meth:`ContractModel.survival_ahead` (the last month
    pro rata); ``clv = margin x sum_k bill x S_k / (1 + d)^k``; ``p_alive`` the probability
    of still being a customer next month, ``S_1``.
    """
    revenue = profile.get_column("revenue_365d").cast(pl.Float64).fill_null(0.0).to_numpy()
    bill = monthly_bill(revenue, paying_days)
    ends = month_ends(horizon_days)
    share = np.diff(ends, prepend=0.0) / DAYS_PER_MONTH
    ahead = model.survival_ahead(profile, ends.size)
    bills = np.cumsum(ahead * share, axis=1)
    rate = monthly_discount_rate(annual_discount_rate)
    return {
        "p_alive": ahead[:, 0],
        "expected_purchases": bills[:, -1],
        "expected_avg_value": bill,
        "clv": np.maximum(discounted_clv(bills, bill, margin, rate), 0.0),
    }
