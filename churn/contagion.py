"""Churn contagion over the call graph, and what a customer's leaving costs through it.

Customers whose contacts leave tend to leave too (Dasgupta et al. 2008). The effect is
estimated from the history before ``as_of`` as a discrete-time hazard: one row per customer
and month at risk over the trailing ``months`` complete months, the outcome "churned in that
month", the exposure the share of the customer's call contacts whose ``churn_date`` lies in
the ``contagion_days`` before the month starts. A logistic regression of the outcome on the
exposure, with the observed drivers of churn as controls (plan type, short tenure, recent and
never-resolved complaints, region x area, contact count, calendar month, and for a postpaid
customer with a ``contract_end_date`` whether the month lies inside the minimum term or in the
month it ends and the next), gives the
contagion ``coefficient``: the change in the log-odds of a customer's monthly churn hazard
per unit share of contacts gone, with its standard error from the Fisher information.
Churn is rare (~2% of customer months), so a panel over ``max_rows`` is fitted on every
churned month and a seeded random sample of the others (case-control sampling): the slopes
of a logistic regression are consistent under sampling on the outcome and only the intercept
moves (Prentice & Pyke 1979). A 250,000-customer panel holds ~2M months and ~34,000 churns;
at 500,000 rows (14 months without a churn per churn) the fit takes a quarter of the time.
Contacts are matched to non-contacts through the controls: the comparison is between
customers alike in everything the data records but whether a contact just left.

:mod:`churn.network` turns the fitted effect into money: what each customer's leaving would
cost through their contacts (``network_value``).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression

from crm_engine.threads import serial_blas
from features.influence import undirected_edges
from features.sample import CustomerSample
from features.window import month_offset, observed, trailing_months

__all__ = [
    "DAYS_PER_MONTH",
    "Contagion",
    "contagion_panel",
    "estimate_contagion",
    "fit_contagion",
]

DAYS_PER_MONTH = 365.25 / 12
_Z95 = 1.959963984540054
_CONTROLS = (
    "prepaid",
    "short_tenure",
    "recent_complaints",
    "open_unresolved",
    "log_contacts",
    "in_contract",
    "contract_end",
)
_CONTRACT_END_MONTHS = 2
"""Months from the one a postpaid customer's minimum term ends in that ``contract_end`` marks."""
_RECENT_COMPLAINTS_MONTHS = 3
_RECENT_COMPLAINTS_CAP = 3
_OPEN_UNRESOLVED_CAP = 2


@dataclass(frozen=True)
class Contagion:
    """The fitted contagion effect (see the module docstring).

    ``coefficient`` and ``std_error`` are on the log-odds of the monthly churn hazard per unit
    share of contacts who left in the ``contagion_days`` before the month; ``rows`` customer
    months at risk, ``events`` churns among them, ``exposed`` rows with a contact gone;
    ``fitted_rows`` the rows the regression saw (every churn, and a sample of the others).
    """

    coefficient: float
    std_error: float
    rows: int
    events: int
    exposed: int
    months: int
    contagion_days: int
    fitted_rows: int = 0
    controls: dict[str, list[float]] = field(default_factory=dict)
    """Each control's ``[coefficient, std_error]`` on the same log-odds scale (the dummies of
    place and month left out): ``contract_end`` is how much more likely a postpaid customer
    leaves in the month their term ends and the next than after it, ``in_contract`` inside it.
    A control constant in the panel (no contract ends in the data) is left out of the fit."""

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% confidence interval of the coefficient."""
        half = _Z95 * self.std_error
        return self.coefficient - half, self.coefficient + half

    @property
    def significant(self) -> bool:
        """True when the 95% interval lies above 0 (contacts' leaving raises churn)."""
        return math.isfinite(self.std_error) and self.interval[0] > 0.0

    @property
    def effect(self) -> float:
        """The coefficient network values use: the estimate when significant, else 0."""
        return self.coefficient if self.significant else 0.0

    @property
    def window_months(self) -> float:
        """The contagion window in months."""
        return self.contagion_days / DAYS_PER_MONTH

    def odds_factor(self, contacts: int) -> float:
        """How much one contact's leaving multiplies the churn odds of a customer with
        ``contacts`` contacts (for the contagion window)."""
        return math.exp(self.effect / max(contacts, 1))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (the report, MLflow)."""
        lo, hi = self.interval
        return asdict(self) | {"ci_low": lo, "ci_high": hi, "significant": self.significant}


def contagion_panel(
    tables: dict[str, pl.LazyFrame],
    as_of: dt.date,
    *,
    months: int = 12,
    contagion_days: int = 90,
    sample: CustomerSample | None = None,
) -> pl.DataFrame:
    """One row per customer and month at risk over the ``months`` complete months before
    ``as_of`` (see the module docstring); only rows before ``as_of`` are read.

    Columns: ``customer_id``, ``month``, ``churned`` (0/1), ``exposure`` (share of contacts
    gone in the window before the month), ``n_contacts`` and the controls ``prepaid``,
    ``short_tenure``, ``recent_complaints``, ``open_unresolved``, ``log_contacts``,
    ``place`` (region x area type). ``sample`` restricts the customers at risk (their
    contacts are everyone).
    """
    first, _ = trailing_months(as_of, months)
    starts = pl.DataFrame({"month": [month_offset(first, k) for k in range(months)]}).lazy()
    as_of_lit = pl.lit(as_of)
    known = observed(tables["customers"], "customers", as_of).with_columns(
        pl.when(pl.col("churn_date") < as_of_lit).then(pl.col("churn_date")).alias("churn_date")
    )
    gone = known.filter(pl.col("churn_date").is_not_null()).select(
        pl.col("customer_id").alias("contact_id"), pl.col("churn_date").alias("_gone")
    )
    calls = tables["calls"]
    population = known
    if sample is not None:
        calls = calls.filter(sample.calls_expr())
        population = known.filter(sample.expr())
    # A contact counts from the month of the pair's first call on (point-in-time inside the
    # panel: a customer who leaves in a month makes no new contacts after it, so counting
    # later contacts would inflate the share of churners and bias the estimate up).
    edges = undirected_edges(calls, as_of, months=None).select(
        "customer_id", "contact_id", pl.col("first_month").alias("_first")
    )
    if sample is not None:
        edges = edges.filter(sample.expr())
    # contacts by month without a contacts x months cross join: the running count of a
    # customer's contacts by the month of their first call, taken as of each month at risk
    contacts = (
        edges.group_by("customer_id", "_first")
        .agg(pl.len().cast(pl.Int64).alias("_new"))
        .sort("customer_id", "_first")
        .with_columns(pl.col("_new").cum_sum().over("customer_id").alias("n_contacts"))
        .select("customer_id", "_first", "n_contacts")
        .sort("_first")
    )
    window = dt.timedelta(days=contagion_days)
    hits = (
        edges.join(gone, on="contact_id", how="inner")
        .join(starts, how="cross")
        .filter((pl.col("_gone") < pl.col("month")) & (pl.col("_gone") >= pl.col("month") - window))
        .group_by("customer_id", "month")
        .agg(pl.len().cast(pl.Int64).alias("_hits"))
    )
    complaints = (
        observed(tables["interactions"], "interactions", as_of)
        .filter(pl.col("kind") == "complaint")
        .select(
            "customer_id",
            pl.col("opened_at").dt.date().alias("_opened"),
            # Never resolved as far as as_of can tell (closed later is not seen either).
            (pl.col("closed_at").is_null() | (pl.col("closed_at").dt.date() >= as_of_lit)).alias(
                "_open"
            ),
        )
    )
    if sample is not None:
        complaints = complaints.filter(sample.expr())
    complaint_counts = (
        complaints.join(starts, how="cross")
        .filter(pl.col("_opened") < pl.col("month"))
        .group_by("customer_id", "month")
        .agg(
            (pl.col("_opened") >= pl.col("month").dt.offset_by(f"-{_RECENT_COMPLAINTS_MONTHS}mo"))
            .sum()
            .cast(pl.Int64)
            .alias("recent_complaints"),
            pl.col("_open").sum().cast(pl.Int64).alias("open_unresolved"),
        )
    )
    at_risk = (
        population.select(
            "customer_id",
            "signup_date",
            "churn_date",
            "plan_type",
            "region",
            "area_type",
            "contract_end_date",
        )
        .join(starts, how="cross")
        .filter(
            (pl.col("signup_date") < pl.col("month"))
            & (pl.col("churn_date").is_null() | (pl.col("churn_date") >= pl.col("month")))
        )
    )
    # the minimum term is agreed at signup: its end is known in every month of the panel
    term = (pl.col("plan_type") == "postpaid") & pl.col("contract_end_date").is_not_null()
    end_month = pl.col("contract_end_date").dt.truncate("1mo")
    panel = (
        at_risk.sort("month")
        .join_asof(
            contacts,
            left_on="month",
            right_on="_first",
            by="customer_id",
            strategy="backward",
            allow_exact_matches=False,  # a contact counts from the month after their first call
            check_sortedness=False,  # both sides sorted above; Polars cannot check within `by`
        )
        .join(hits, on=["customer_id", "month"], how="left")
        .join(complaint_counts, on=["customer_id", "month"], how="left")
        .with_columns(
            pl.col("n_contacts", "_hits", "recent_complaints", "open_unresolved").fill_null(0)
        )
        .select(
            "customer_id",
            "month",
            (pl.col("churn_date") < pl.col("month").dt.offset_by("1mo"))
            .fill_null(False)
            .cast(pl.Int8)
            .alias("churned"),
            pl.when(pl.col("n_contacts") > 0)
            .then(pl.col("_hits") / pl.col("n_contacts"))
            .otherwise(0.0)
            .alias("exposure"),
            "n_contacts",
            (pl.col("plan_type") == "prepaid").cast(pl.Float64).alias("prepaid"),
            ((pl.col("month") - pl.col("signup_date")).dt.total_days() < 365)
            .cast(pl.Float64)
            .alias("short_tenure"),
            pl.col("recent_complaints").clip(upper_bound=_RECENT_COMPLAINTS_CAP).cast(pl.Float64),
            pl.col("open_unresolved").clip(upper_bound=_OPEN_UNRESOLVED_CAP).cast(pl.Float64),
            pl.col("n_contacts").log1p().alias("log_contacts"),
            (term & (pl.col("month") < end_month)).cast(pl.Float64).alias("in_contract"),
            (
                term
                & (pl.col("month") >= end_month)
                & (pl.col("month") < end_month.dt.offset_by(f"{_CONTRACT_END_MONTHS}mo"))
            )
            .cast(pl.Float64)
            .alias("contract_end"),
            pl.concat_str(
                pl.col("region").fill_null("?"), pl.col("area_type").fill_null("?"), separator="/"
            ).alias("place"),
        )
        .sort("customer_id", "month")
    )
    return panel.collect()


def fit_contagion(
    panel: pl.DataFrame,
    *,
    months: int,
    contagion_days: int,
    max_rows: int | None = 500_000,
    seed: int = 0,
) -> Contagion:
    """The contagion coefficient of a :func:`contagion_panel` (unpenalised logistic
    regression; standard error from the inverse Fisher information).

    A panel of more than ``max_rows`` rows (None: no bound) is fitted on every churned month
    and a random (``seed``) sample of the others, ``max_rows`` in all (see the module
    docstring); ``rows``, ``events`` and ``exposed`` count the whole panel either way.

    Raises
    ------
    ValueError
        When the panel has no churn, no exposure or nothing but churn to learn from.
    """
    rows = panel.height
    y = panel.get_column("churned").to_numpy().astype(np.float64)
    events = int(y.sum())
    exposure = panel.get_column("exposure").to_numpy()
    exposed = int((exposure > 0).sum())
    if events == 0 or events == rows or exposed == 0:
        raise ValueError(
            f"contagion: {rows} customer months, {events} churns, {exposed} exposed: nothing "
            "to estimate the effect of a contact's churn from"
        )
    if max_rows is not None and rows > max_rows and max_rows > 2 * events:
        panel = _case_control(panel, y, max_rows - events, seed)
        y = panel.get_column("churned").to_numpy().astype(np.float64)
        exposure = panel.get_column("exposure").to_numpy()
    dummies = panel.select(
        pl.col("place").cast(pl.Categorical), pl.col("month").cast(pl.String).cast(pl.Categorical)
    ).to_dummies(drop_first=True)
    # a control that never varies (no contract ends in the data) has nothing to estimate
    controls = [c for c in _CONTROLS if c in panel.columns and panel.get_column(c).n_unique() > 1]
    # filled in place: stacking float copies of the dummies doubled the peak (2M rows at 1M)
    x = np.empty((panel.height, 1 + len(controls) + dummies.width))
    x[:, 0] = exposure
    x[:, 1 : 1 + len(controls)] = panel.select(controls).to_numpy()
    x[:, 1 + len(controls) :] = dummies.to_numpy()
    with serial_blas():
        lr = LogisticRegression(C=np.inf, solver="newton-cholesky", max_iter=200).fit(x, y)
        p = lr.predict_proba(x)[:, 1]
        fisher = _fisher_information(x, p)
    try:
        variances = np.diag(np.linalg.inv(fisher))
    except np.linalg.LinAlgError:
        variances = np.full(fisher.shape[0], np.nan)
    se = np.sqrt(np.where(variances > 0, variances, np.nan))
    return Contagion(
        coefficient=float(lr.coef_[0, 0]),
        std_error=float(se[1]),
        controls={c: [float(lr.coef_[0, 1 + i]), float(se[2 + i])] for i, c in enumerate(controls)},
        rows=rows,
        events=events,
        exposed=exposed,
        months=months,
        contagion_days=contagion_days,
        fitted_rows=panel.height,
    )


def _case_control(panel: pl.DataFrame, y: np.ndarray, controls: int, seed: int) -> pl.DataFrame:
    """Every churned row of ``panel`` (``y`` = 1) and ``controls`` of the others drawn at
    random with ``seed``, in panel order."""
    others = np.flatnonzero(y == 0)
    drawn = np.random.default_rng(seed).choice(others, size=controls, replace=False)
    keep = np.zeros(y.shape[0], dtype=bool)
    keep[y == 1] = True
    keep[drawn] = True
    return panel.filter(pl.Series(keep))


def _fisher_information(x: np.ndarray, p: np.ndarray, block: int = 100_000) -> np.ndarray:
    """``D' W D`` of the design ``D = [1, x]`` with ``W = p (1 - p)``, a block of rows at a
    time: the whole weighted design of 2M customer months is about a gigabyte twice over."""
    k = x.shape[1] + 1
    out = np.zeros((k, k))
    for lo in range(0, x.shape[0], block):
        d = np.column_stack([np.ones(min(block, x.shape[0] - lo)), x[lo : lo + block]])
        w = p[lo : lo + block] * (1.0 - p[lo : lo + block])
        out += d.T @ (d * w[:, None])
    return out


def estimate_contagion(
    tables: dict[str, pl.LazyFrame],
    as_of: dt.date,
    *,
    months: int = 12,
    contagion_days: int = 90,
    sample: CustomerSample | None = None,
    max_rows: int | None = 500_000,
) -> Contagion:
    """:func:`fit_contagion` of the :func:`contagion_panel` at ``as_of``."""
    panel = contagion_panel(
        tables, as_of, months=months, contagion_days=contagion_days, sample=sample
    )
    return fit_contagion(panel, months=months, contagion_days=contagion_days, max_rows=max_rows)
