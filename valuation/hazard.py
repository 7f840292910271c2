"""Each postpaid customer's own monthly churn hazard: a discrete-time logistic hazard model.

The sBG (:mod:`valuation.contract`) gives every customer of a tenure the same retention curve.
Here a customer's chance of leaving in a month depends on what is known about them at the cut
(their bill, complaints, open tickets, network experience, survey answers, who they are) and
on what changes month by month in a way known in advance: the tenure ages, and the months to
the end of the minimum term count down (postpaid customers leave most often as it ends).

Training rows are customer-months ("person-period" rows, Singer & Willett 1993), built point in
time: at each of ``landmarks`` cuts ``L = as_of - j x landmark_months x 30 days`` the profile
of a hashed sample of customers (:class:`features.CustomerSample`, at most ``max_customers``,
so the rows stay bounded at any customer count) gives the covariates, and every billed
postpaid customer there is followed for ``landmark_months`` 30-day months: a row per month at
risk, ``churned`` in the month their ``churn_date`` falls (only churns before ``as_of`` are
read). A scikit-learn :class:`~sklearn.linear_model.LogisticRegression` fits the hazard; only
its coefficients and the encoding's numbers are kept (``params_`` and friends), so the model is
plain data.

Projected forward from a cut, month ``k = 0, 1, ...`` has the customer's own hazard ``h_k``
(tenure + k months, months to the term's end - k) and ``S_k = prod_{i <= k} (1 - h_i)``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
from typing import Any, ClassVar

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from crm_engine.config import ValuationConfig
from crm_engine.threads import serial_blas
from features import CustomerSample, PointInTime
from valuation.base import ValuationError
from valuation.clv import DAYS_PER_MONTH
from valuation.contract import MIN_CUSTOMERS, ContractModel, first_day, monthly_bill

__all__ = ["HAZARD", "HazardModel", "landmark_cuts", "person_months"]

HAZARD = "hazard"
"""``value_model`` of a customer valued by their own monthly hazard."""

NUMERIC = (
    "log_bill",
    "age",
    "complaints_90d",
    "complaints_365d",
    "open_tickets",
    "network_experience_score",
    "interaction_satisfaction_mean",
    "last_nps",
    "spend_trend",
    "days_since_last_payment",
    "churned_contacts_share_90d",
)
"""Covariates read from the profile at the cut when present (``log_bill`` from the trailing
monthly bill): clipped to the fit's 1st-99th percentiles, standardised, a missing value at
the mean with a ``missing:`` indicator."""
CATEGORICAL = ("occupation", "region", "area_type", "gender")
"""Profile columns one-hot encoded (``name:value``); a value not seen in the fit adds 0."""
TENURE_BINS = (0, 3, 6, 12, 24, 48)
"""Tenure in whole months at the start of a month: ``tenure:0-2``, ..., ``tenure:48+``."""
TENURE_LABELS = (
    *(f"tenure:{a}-{b - 1}" for a, b in itertools.pairwise(TENURE_BINS)),
    f"tenure:{TENURE_BINS[-1]}+",
)
CONTRACT_BINS: tuple[tuple[str, int, int], ...] = (
    ("contract:12+", 12, 10**6),
    ("contract:6-11", 6, 11),
    ("contract:3-5", 3, 5),
    ("contract:1-2", 1, 2),
    ("contract:0", 0, 0),
    ("contract:-1", -1, -1),
    ("contract:-3..-2", -3, -2),
    ("contract:ended", -(10**6), -4),
)
"""Calendar months from a month to the month the minimum term ends (0: it ends this month,
-1: it ended last month); ``contract:none`` without a term."""
CONTRACT_LABELS = (*(b[0] for b in CONTRACT_BINS), "contract:none")
END_WINDOW = ("contract:0", "contract:-1")
"""The months a term ends in and the one after: :attr:`HazardModel.contract_end_rise`
compares their log-odds with ``contract:ended``."""
INTERCEPT = "intercept"


SURVIVAL_ROWS = 250_000
"""Customers whose monthly survival :class:`HazardModel` computes at a time."""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def _tenure_index(months: np.ndarray) -> np.ndarray:
    """Index in :data:`TENURE_LABELS` of whole months of tenure."""
    return np.searchsorted(np.asarray(TENURE_BINS[1:]), months, side="right")


def _contract_index(months_left: np.ndarray) -> np.ndarray:
    """Index in :data:`CONTRACT_LABELS` of the months to the term's end (NaN: no term)."""
    out = np.full(months_left.shape, len(CONTRACT_BINS), dtype=np.int64)
    for i, (_, lo, hi) in enumerate(CONTRACT_BINS):
        out[(months_left >= lo) & (months_left <= hi)] = i
    return out


def _base_columns(profile: pl.DataFrame) -> pl.DataFrame:
    """``tenure_days``, ``contract_months_left`` and the covariates present, ``log_bill``
    derived (a column :data:`NUMERIC` or :data:`CATEGORICAL` name that is absent is null)."""
    n = profile.height
    col = lambda c, t: (  # noqa: E731
        profile.get_column(c).cast(t)
        if c in profile.columns
        else pl.repeat(None, n, dtype=t, eager=True).alias(c)
    )
    revenue = col("revenue_365d", pl.Float64).fill_null(0.0).to_numpy()
    paying = col("T", pl.Float64).fill_null(0.0).to_numpy()
    bill = monthly_bill(revenue, paying)
    frame = {
        "tenure_days": col("tenure_days", pl.Float64).fill_null(0.0).clip(lower_bound=0.0),
        "contract_months_left": col("contract_months_left", pl.Float64),
        "log_bill": pl.Series("log_bill", np.log1p(bill)),
    }
    frame |= {c: col(c, pl.Float64) for c in NUMERIC if c != "log_bill"}
    frame |= {c: col(c, pl.String) for c in CATEGORICAL}
    return pl.DataFrame(frame)


def landmark_cuts(at: PointInTime, landmarks: int, landmark_months: int) -> list[dt.date]:
    """The landmark cuts :func:`person_months` reads: every ``landmark_months`` 30-day months
    before ``at.as_of``, up to ``landmarks`` of them, each with 90 days of data before it.

    Raises
    ------
    ValuationError
        No transactions.
    """
    since = first_day(at)
    days = landmark_months * DAYS_PER_MONTH
    cuts = [at.as_of - dt.timedelta(days=j * days) for j in range(1, landmarks + 1)]
    return [c for c in cuts if c >= since + dt.timedelta(days=90)]


def person_months(
    at: PointInTime,
    landmarks: int,
    landmark_months: int,
    sample: CustomerSample | None,
) -> pl.DataFrame:
    """The training rows: one per billed postpaid customer and 30-day month at risk after each
    landmark cut before ``at.as_of`` (see the module docstring), of ``sample``'s customers.

    Returns
    -------
    polars.DataFrame
        :func:`_base_columns` at the landmark, ``k`` (months since it), ``churned`` and
        ``landmark`` (0: the latest cut).

    Raises
    ------
    ValuationError
        No transactions, or no landmark with 90 days of data before it.
    """
    as_of, since = at.as_of, first_day(at)
    cuts = landmark_cuts(at, landmarks, landmark_months)
    if not cuts:
        raise ValuationError(
            f"the hazard model follows customers for {landmark_months} months from a cut with "
            f"90 days of data before it: as_of {as_of} is too close to the data's start "
            f"{since} (valuation.hazard.landmark_months)"
        )
    # the sample's customers where they lie (on Spark the executors keep them)
    customers = dataclasses.replace(at, sample=sample).sample_tables()["customers"]
    churn = customers.select(
        "customer_id",
        pl.when(pl.col("churn_date") < as_of).then(pl.col("churn_date")).alias("churn"),
    )
    parts = []
    at.expect(cuts, sample)
    for cut in cuts:
        profile = at.profile_at(cut, sample)
        billed = profile.filter(
            (pl.col("plan_type") == "postpaid").fill_null(False)
            & pl.col("has_purchase").fill_null(False)
        )
        if billed.height == 0:
            continue
        ids = billed.select("customer_id")
        base = pl.concat([ids, _base_columns(billed)], how="horizontal").join(
            churn.join(ids.lazy(), on="customer_id").collect(), on="customer_id", how="left"
        )
        # month of the churn after the cut (30-day months), null: none before as_of
        month = ((pl.col("churn") - pl.lit(cut)).dt.total_days() // DAYS_PER_MONTH).cast(pl.Int64)
        rows = (
            base.with_columns(month.alias("churn_month"))
            .join(pl.DataFrame({"k": np.arange(landmark_months, dtype=np.int64)}), how="cross")
            .filter(pl.col("churn_month").is_null() | (pl.col("k") <= pl.col("churn_month")))
            .with_columns((pl.col("k") == pl.col("churn_month")).fill_null(False).alias("churned"))
            .drop("customer_id", "churn", "churn_month")
        )
        parts.append(rows.with_columns(pl.lit(len(parts), pl.Int64).alias("landmark")))
    if not parts:
        raise ValuationError("the hazard model found no billed postpaid customer at its cuts")
    return pl.concat(parts)


class HazardModel(ContractModel):
    """A discrete-time logistic hazard of each postpaid customer's monthly churn.

    Parameters
    ----------
    landmarks
        Cuts before ``as_of`` the training rows start from (one every ``landmark_months``).
    landmark_months
        30-day months each cut's customers are followed.
    max_customers
        Customers whose profiles are read at each cut, at most (a hashed sample of the
        customers table; postpaid ones give rows).
    C
        Inverse L2 regularisation of the logistic regression (scikit-learn's ``C``).
    seed
        Hash seed of the sample.

    Attributes
    ----------
    params_ : dict[str, float]
        Log-odds coefficient of each design column (``intercept``, numeric covariates on the
        standardised scale, ``missing:<col>``, ``<col>:<value>``, ``tenure:<bin>``,
        ``contract:<bin>``).
    center_, scale_, lo_, hi_ : dict[str, float]
        The numeric covariates' mean and spread (after clipping to ``lo_``..``hi_``).
    n_customers_, n_person_months_, n_churned_ : int
        Customer-cuts, rows and churn months the fit saw.
    log_likelihood_ : float
        Of the training rows (without the penalty).
    retention_12m_ : float
        Mean projected 12-month retention of the latest cut's customers.
    """

    model_name: ClassVar[str] = HAZARD

    def __init__(
        self,
        landmarks: int = 2,
        landmark_months: int = 6,
        max_customers: int = 100_000,
        C: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.landmarks = landmarks
        self.landmark_months = landmark_months
        self.max_customers = max_customers
        self.C = C
        self.seed = seed

    @classmethod
    def from_config(cls, cfg: ValuationConfig) -> HazardModel:
        h = cfg.hazard
        return cls(h.landmarks, h.landmark_months, h.max_customers, h.C)

    # --- training ------------------------------------------------------------------------
    def training_frame(self, at: PointInTime) -> pl.DataFrame:
        """:func:`person_months` of a sample of at most ``max_customers`` customers (its own:
        ``at.sample`` bounds the holdouts)."""
        return person_months(at, self.landmarks, self.landmark_months, self._sample(at))

    def profiles_read(self, at: PointInTime) -> tuple[list[dt.date], CustomerSample | None]:
        """The landmark cuts (:func:`landmark_cuts`) and the sample of :meth:`training_frame`."""
        return landmark_cuts(at, self.landmarks, self.landmark_months), self._sample(at)

    def _sample(self, at: PointInTime) -> CustomerSample | None:
        return CustomerSample.bounded(at.customer_count(), self.max_customers, self.seed)

    def fit(self, X: pl.DataFrame, y: None = None) -> HazardModel:
        """Fit on :func:`person_months` rows.

        Raises
        ------
        ValuationError
            Fewer than ``MIN_CUSTOMERS`` customers or no churn month among the rows.
        """
        if self.landmarks < 1 or self.landmark_months < 1 or self.C <= 0:
            raise ValueError(
                f"landmarks={self.landmarks} and landmark_months={self.landmark_months} should "
                f"be >= 1 and C={self.C} > 0"
            )
        churned = X.get_column("churned").to_numpy().astype(bool)
        first = int((X.get_column("k") == 0).sum())
        if first < MIN_CUSTOMERS or not churned.any():
            raise ValuationError(
                f"the hazard model needs at least {MIN_CUSTOMERS} billed postpaid customers and "
                f"some churn among them; its cuts hold {first:,} customers and "
                f"{int(churned.sum()):,} churn months (table customers, column churn_date)"
            )
        self.lo_, self.hi_, self.center_, self.scale_ = {}, {}, {}, {}
        missing: list[str] = []
        for c in NUMERIC:
            x = X.get_column(c).to_numpy().astype(np.float64)
            seen = x[np.isfinite(x)]
            if seen.size == 0:
                continue
            lo, hi = np.quantile(seen, [0.01, 0.99])
            clipped = np.clip(seen, lo, hi)
            self.lo_[c], self.hi_[c] = float(lo), float(hi)
            self.center_[c] = float(clipped.mean())
            self.scale_[c] = float(clipped.std()) or 1.0
            if seen.size < x.size:
                missing.append(c)
        names = [*self.center_, *(f"missing:{c}" for c in missing)]
        for c in CATEGORICAL:
            values = X.get_column(c).drop_nulls().unique().sort().to_list()
            names += [f"{c}:{v}" for v in values]
        names += [*TENURE_LABELS, *CONTRACT_LABELS]
        self._names = names = sorted(names)  # one order, however params_ was stored
        design = self._design(X, X.get_column("k").to_numpy())
        learner = LogisticRegression(C=self.C, max_iter=2000)
        with serial_blas():
            learner.fit(design, churned)
        coef = learner.coef_.ravel()
        self.params_ = {INTERCEPT: float(learner.intercept_[0])} | {
            n: float(b) for n, b in zip(names, coef, strict=True)
        }
        del self._names
        p = np.clip(learner.predict_proba(design)[:, 1], 1e-12, 1 - 1e-12)
        self.log_likelihood_ = float(np.where(churned, np.log(p), np.log1p(-p)).sum())
        self.n_customers_ = first
        self.n_person_months_ = X.height
        self.n_churned_ = int(churned.sum())
        latest = X.filter((pl.col("k") == 0) & (pl.col("landmark") == 0))
        self.retention_12m_ = float(self._survival(latest, 12)[:, -1].mean())
        return self

    # --- the design matrix -----------------------------------------------------------------
    def _columns(self) -> list[str]:
        names = getattr(self, "_names", None)
        return names or sorted(n for n in self.params_ if n != INTERCEPT)

    def _design(self, base: pl.DataFrame, k: np.ndarray | int) -> np.ndarray:
        """Rows of :func:`_base_columns` at ``k`` months after their cut -> design matrix."""
        names = self._columns()
        index = {n: i for i, n in enumerate(names)}
        out = np.zeros((base.height, len(names)))
        for c in self.center_:
            x = base.get_column(c).to_numpy().astype(np.float64)
            bad = ~np.isfinite(x)
            z = (np.clip(np.where(bad, self.center_[c], x), self.lo_[c], self.hi_[c])) - (
                self.center_[c]
            )
            out[:, index[c]] = z / self.scale_[c]
            if f"missing:{c}" in index:
                out[:, index[f"missing:{c}"]] = bad
        for c in CATEGORICAL:
            values = base.get_column(c)
            for name, j in index.items():
                if name.startswith(f"{c}:"):
                    out[:, j] = (values == name[len(c) + 1 :]).fill_null(False).to_numpy()
        tenure, contract = self._time_bins(base, k)
        rows = np.arange(base.height)
        out[rows, np.asarray([index[t] for t in TENURE_LABELS])[tenure]] = 1.0
        out[rows, np.asarray([index[c] for c in CONTRACT_LABELS])[contract]] = 1.0
        return out

    @staticmethod
    def _time_bins(base: pl.DataFrame, k: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """Indices in :data:`TENURE_LABELS` and :data:`CONTRACT_LABELS` ``k`` months on."""
        tenure = base.get_column("tenure_days").to_numpy().astype(np.float64)
        months = np.floor(tenure / DAYS_PER_MONTH) + k
        left = base.get_column("contract_months_left").to_numpy().astype(np.float64) - k
        return _tenure_index(months), _contract_index(left)

    def _survival(self, base: pl.DataFrame, months: int) -> np.ndarray:
        """``(n, months)``: survival to the end of each month ahead of the base rows' cut,
        :data:`SURVIVAL_ROWS` rows at a time (a design matrix of every postpaid customer at
        once took 3 GB at 10M customers)."""
        out = np.empty((base.height, months))
        for start in range(0, base.height, SURVIVAL_ROWS):
            part = base.slice(start, SURVIVAL_ROWS)
            out[start : start + part.height] = self._survival_rows(part, months)
        return out

    def _survival_rows(self, base: pl.DataFrame, months: int) -> np.ndarray:
        names = self._columns()
        beta = np.asarray([self.params_[n] for n in names])
        static = ~np.asarray([n.startswith(("tenure:", "contract:")) for n in names])
        logit = self._design(base, 0)[:, static] @ beta[static] + self.params_[INTERCEPT]
        tenure_beta = np.asarray([self.params_[t] for t in TENURE_LABELS])
        contract_beta = np.asarray([self.params_[c] for c in CONTRACT_LABELS])
        hazards = np.empty((base.height, months))
        for k in range(months):
            tenure, contract = self._time_bins(base, k)
            hazards[:, k] = _sigmoid(logit + tenure_beta[tenure] + contract_beta[contract])
        return np.cumprod(1.0 - hazards, axis=1)

    # --- prediction ------------------------------------------------------------------------
    def monthly_hazards(self, profile: pl.DataFrame, months: int) -> np.ndarray:
        """``(n, months)``: each customer's own hazard in month ``k = 0..months-1`` after the
        profile's cut (tenure ages, the months to the term's end count down)."""
        check_is_fitted(self, "params_")
        s = self._survival(_base_columns(profile), months)
        prev = np.concatenate([np.ones((profile.height, 1)), s[:, :-1]], axis=1)
        return 1.0 - s / prev

    def survival_ahead(self, profile: pl.DataFrame, months: int) -> np.ndarray:
        check_is_fitted(self, "params_")
        return self._survival(_base_columns(profile), months)

    def input_columns(self) -> tuple[str, ...]:
        check_is_fitted(self, "params_")
        used = {
            n.split(":")[-1] if n.startswith("missing:") else n.split(":")[0] for n in self.params_
        }
        cols = ["tenure_days", "contract_months_left", "revenue_365d", "T"]
        cols += [c for c in (*NUMERIC, *CATEGORICAL) if c in used and c != "log_bill"]
        return tuple(cols)

    def input_example(self) -> dict[str, list[Any]]:
        example: dict[str, list[Any]] = {
            "tenure_days": [45.0, 400.0],
            "contract_months_left": [None, 11.0],
            "T": [45.0, 400.0],
        }
        for c in self.input_columns():
            if c in CATEGORICAL:
                example[c] = ["unknown", "unknown"]
            elif c not in example and c != "revenue_365d":
                example[c] = [0.0, 0.0]
        return example

    @property
    def contract_end_rise(self) -> float:
        """Log-odds of leaving in the month a term ends and the next, above a customer whose
        term ended months ago (the generator plants +1.2)."""
        check_is_fitted(self, "params_")
        window = np.mean([self.params_[n] for n in END_WINDOW])
        return float(window - self.params_["contract:ended"])

    def summary(self) -> dict[str, float]:
        """Customers, person-months and churn months fitted, log-likelihood, the contract-end
        rise (log-odds) and the latest cut's mean 12-month ``retention_12m``."""
        check_is_fitted(self, "params_")
        out = {
            "n_customers": self.n_customers_,
            "n_person_months": self.n_person_months_,
            "n_churned": self.n_churned_,
            "log_likelihood": self.log_likelihood_,
            "contract_end_rise": self.contract_end_rise,
            "retention_12m": self.retention_12m_,
        }
        return {k: float(v) if not math.isnan(v) else 0.0 for k, v in out.items()}
