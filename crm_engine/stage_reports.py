"""What each model stage reports about its run: typed, aggregates only, never customer rows.

The stage packages build these, the runner files them, the report and the CLI read their
attributes, and the manifest and ``valuation.json`` hold their :meth:`to_dict`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BacktestReport",
    "ChurnBacktest",
    "ChurnReport",
    "ContagionReport",
    "DriftAlert",
    "DriftReport",
    "FeatureImportance",
    "KScore",
    "PopulationReport",
    "RetentionReport",
    "SegmentSize",
    "SegmentationReport",
    "SpendReport",
    "ValuationReport",
    "ValueBacktest",
    "to_jsonable",
]


def to_jsonable(value: Any) -> Any:
    """A stage report (or anything inside one) as plain JSON types; dates become ISO strings.

    Our reports are serialised field by field; anything else with a ``to_dict`` (the holdout
    result) by that.
    """
    own = isinstance(
        value, ValuationReport | ChurnReport | SegmentationReport | BacktestReport | DriftReport
    )
    if own or (dataclasses.is_dataclass(value) and not hasattr(value, "to_dict")):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class PopulationReport:
    """Who the profile stage scores at as_of, and why the customers table holds more.

    ``n_other`` counts rows in none of the groups (no signup date; only with ``--no-validate``).
    """

    n_customers: int
    """Rows of the customers table."""
    n_scored: int
    """Customers still a customer at as_of (signed up before it, not churned before it)."""
    n_churned_before_as_of: int
    n_not_yet_signed_up: int
    """Sign-up on or after as_of."""

    @property
    def n_other(self) -> int:
        return (
            self.n_customers
            - self.n_scored
            - self.n_churned_before_as_of
            - self.n_not_yet_signed_up
        )


@dataclass(frozen=True)
class SpendReport:
    """The fitted spend (Gamma-Gamma) model."""

    model: str
    params: dict[str, float]
    population_mean: float
    log_likelihood: float
    n_customers_fitted: int
    n_customers_excluded: int
    frequency_monetary_corr: float | None
    """Pearson correlation of frequency and spend; Gamma-Gamma assumes about zero."""


@dataclass(frozen=True)
class ValuationReport:
    """The valuation of one run: the fitted models, the CLV settings, tiers and stages.

    ``params`` and ``population_rates_per_day`` are per day; ``holdout`` is the holdout result
    (``valuation.holdout.HoldoutResult``) when one ran.
    """

    model: str
    time_unit: str
    params: dict[str, float]
    population_rates_per_day: dict[str, float]
    log_likelihood: float
    n_customers_fitted: int
    n_distinct_triples: int
    penalizer: float
    spend: SpendReport
    horizon_days: int
    annual_discount_rate: float
    monthly_discount_rate: float
    margin: float
    n_customers_scored: int
    n_customers_without_purchase: int
    total_clv: float
    mean_p_alive: float
    tier_cut_points: dict[str, float]
    tier_counts: dict[str, int]
    lifecycle_counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    as_of: dt.date | None = None
    model_requested: str | None = None
    holdout: Any = None
    holdout_error: str | None = None
    model_uri: str | None = None
    """The registered model that scored (``--score-only``), None when fitted in this run."""
    holdout_plot: str | None = None
    """File name of the holdout plot written beside the values (``crm-engine value``)."""
    revenue_holdout: Any = None
    """Revenue over the horizon predicted at ``as_of - horizon_days`` against the real one, by
    plan type and model (``valuation.revenue.RevenueHoldout``), when it ran."""
    revenue_holdout_error: str | None = None
    n_customers_frequency0: int = 0
    """Customers without a repeat purchase (one purchase day, or none)."""
    frequency0_model: str | None = None
    """The model that valued them: ``model`` itself unless it gives them P(alive) = 1 (BG/NBD),
    then ``mbgnbd`` fitted on the same customers (``frequency0_params``, per day)."""
    frequency0_params: dict[str, float] = field(default_factory=dict)
    retention: dict[str, float] | None = None
    """The postpaid customers' contract retention model in numbers (its ``summary()``: for the
    sBG ``alpha``, ``beta``, ``n_customers``, ``n_churned``, ``log_likelihood``, and
    ``retention_12m``: a new customer's 12-month retention; for the hazard model its
    customers, person-months, churns, the contract-end rise and ``retention_12m``); None when
    they were valued by the purchase model."""
    retention_model: str | None = None
    """Which contract model that is: ``sbg`` or ``hazard`` (None: none)."""
    n_customers_contract: int = 0
    """Customers valued by the contract retention model (``value_model`` = its name)."""
    n_postpaid_unbilled: int = 0
    """Postpaid customers the contract model would value but who have paid no bill yet: the
    purchase model values them."""
    contract_ends: list[dict[str, Any]] = field(default_factory=list)
    """Postpaid minimum terms ending in each of the next 12 calendar months: ``month``
    (``YYYY-MM``), ``customers`` and their ``clv``; empty without contract ends."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``valuation.json``, the manifest)."""
        return to_jsonable(self)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class FeatureImportance:
    """Mean absolute contribution of one feature to the churn log-odds."""

    feature: str
    mean_abs_contribution: float


LEARNER_NAMES = {"lightgbm": "LightGBM", "logistic": "logistic regression"}
"""The churn learners (``churn.model``) in words."""


@dataclass(frozen=True)
class RetentionReport:
    """What a retention campaign on this run's scores is worth (``[retention]`` terms).

    ``empc`` and ``empc_share`` are out of time on the validation cut's report half, every
    customer valued at ``customer_value`` (the mean CLV of the scored customers not lost);
    ``contacts`` and ``expected_profit`` are this run's profit-optimal contact set
    (``churn_risk_band = "high"``) and its expected profit, from each customer's own CLV.
    """

    offer_cost: float
    contact_cost: float
    accept_rate: float
    accept_concentration: float
    customer_value: float
    empc: float
    empc_share: float
    profit_at_mean: float
    share_at_mean: float
    contacts: int
    candidates: int
    expected_profit: float

    @property
    def contact_share(self) -> float:
        """Share of the scored customers not lost in the contact set."""
        return self.contacts / self.candidates if self.candidates else 0.0


@dataclass(frozen=True)
class ContagionReport:
    """How much a contact's leaving raises churn, and what customers take with them.

    ``coefficient`` (95% interval ``ci_low`` .. ``ci_high``) is the change in the log-odds of
    the monthly churn hazard per unit share of contacts gone in the ``contagion_days`` before
    the month, from ``rows`` customer months (``events`` churns, ``exposed`` with a contact
    gone) over ``months`` months (:mod:`churn.contagion`). Not ``significant``: network values
    are 0. ``odds_factor`` is one departure's effect on a customer with ``median_contacts``.
    """

    coefficient: float
    std_error: float
    ci_low: float
    ci_high: float
    significant: bool
    rows: int
    events: int
    exposed: int
    months: int
    contagion_days: int
    fitted_rows: int
    """Customer months the regression saw: every churn and a sample of the others."""
    median_contacts: int
    odds_factor: float
    value_at_risk_network: float
    """Sum of ``value_at_risk_network`` over the scored customers."""
    value_at_risk: float
    """Sum of the customers' own ``value_at_risk``, to compare."""
    customers_with_network_value: int
    controls: dict[str, list[float]] = field(default_factory=dict)
    """Each control's ``[coefficient, std_error]`` in the same hazard model: ``contract_end``
    (the month a postpaid term ends and the next), ``in_contract``, ``prepaid``, ..."""


@dataclass(frozen=True)
class ChurnReport:
    """The churn (and loyalty) models of one run, out of time.

    ``metrics`` holds ``churn.<metric>`` and ``loyalty.<metric>`` (validation cut, report half);
    ``importance`` the top features over the customers whose drivers were computed.
    """

    metrics: dict[str, float]
    features: list[str]
    importance: list[FeatureImportance]
    train_cut: dt.date
    valid_cut: dt.date
    horizon_days: int
    loyalty_skipped: str | None = None
    train_cuts: list[dt.date] = field(default_factory=list)
    """Every stacked training cut, latest first (``train_cut`` is the first)."""
    learning_curve: list[dict[str, float]] = field(default_factory=list)
    """Out-of-time metrics by number of stacked snapshots (``snapshots``, ``train_rows``,
    ``roc_auc``, ``brier``, ...); the last row is the kept model."""
    lifecycle_by_band: dict[str, dict[str, int]] | None = None
    """Scored customers by lifecycle stage x churn risk band (``{stage: {band: n}}``, summing
    to the scored count); None when valuation did not run or nothing was scored. Dormant
    customers are all in band ``lost``."""
    retention: RetentionReport | None = None
    """The profit of acting on the scores; None without valuation or scoring."""
    contagion: ContagionReport | None = None
    """Churn contagion and network value; None without valuation, calls or scoring."""
    model: str = "lightgbm"
    """The learner kept (``lightgbm`` or ``logistic``; ``churn.model``)."""

    def model_choice(self) -> str:
        """Which learner scores, and, under ``churn.model = "auto"``, what it beat, in words."""
        m = self.churn_metrics()
        kept = LEARNER_NAMES.get(self.model, self.model)
        if not m.get("model_auto"):
            return kept
        scores = [
            f"{LEARNER_NAMES[k]} {m[f'{k}.selection_roc_auc']:.3f}"
            for k in LEARNER_NAMES
            if f"{k}.selection_roc_auc" in m
        ]
        return f"{kept} (chosen by validation AUC: {' vs '.join(scores)})"

    def churn_metrics(self) -> dict[str, float]:
        """The churn model's metrics without their ``churn.`` prefix."""
        return {
            k.removeprefix("churn."): v for k, v in self.metrics.items() if k.startswith("churn.")
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the manifest)."""
        return to_jsonable(self)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class KScore:
    """How one candidate number of segments scored (NaN-free: missing is None)."""

    k: int
    silhouette: float | None
    bic: float | None
    inertia: float | None
    chosen: bool


@dataclass(frozen=True)
class SegmentSize:
    """One segment and how many customers it holds."""

    segment_id: int
    segment_name: str
    size: int


@dataclass(frozen=True)
class SegmentationReport:
    """The segmentation of one run: the k search, the segments and the alignment of their ids.

    ``same_segment_share``, ``fresh_ids`` and ``matches`` are set when the ids were aligned with
    a previous model (``aligned``); ``migration`` holds the previous x new segment counts then.
    """

    algorithm: str
    k: int
    k_search: bool
    features: list[str]
    n_customers: int
    fit_rows: int
    scores: list[KScore]
    spend_cut_points: list[float]
    segments: list[SegmentSize]
    timings_s: dict[str, float]
    aligned: bool = False
    fresh_ids: int | None = None
    same_segment_share: float | None = None
    matches: list[dict[str, Any]] = field(default_factory=list)
    previous_model: str | None = None
    migration: list[dict[str, Any]] | None = None

    @property
    def chosen(self) -> KScore | None:
        """The score of the chosen k (None when k was fixed and not scored)."""
        return next((s for s in self.scores if s.chosen), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``segmentation.json``, the manifest)."""
        return to_jsonable(self)  # type: ignore[no-any-return]


# --- the backtest: what an earlier run said against what happened -------------------------


@dataclass(frozen=True)
class ChurnBacktest:
    """An earlier run's churn probabilities against who really left.

    ``churned`` counts ``churn_date`` in ``[as_of, as_of + elapsed_days)`` of the earlier run;
    ``elapsed_share`` = ``elapsed_days / horizon_days`` (1 when the horizon has passed: below
    it the realised rates are a lower bound of the horizon's). ``by_band`` rows:
    ``churn_risk_band``, ``customers``, ``churned``, ``mean_predicted``, ``realised_rate``;
    ``by_decile`` rows: ``decile`` (1 = the lowest predicted tenth), ``customers``,
    ``mean_predicted``, ``realised_rate``; ``save_list``: ``customers``, ``churned``,
    ``realised_rate`` of the earlier run's save-first list (None when it had none).
    """

    horizon_days: int
    elapsed_days: int
    elapsed_share: float
    customers: int
    churned: int
    roc_auc: float
    lift_top_decile: float
    capture_top_decile: float
    brier: float
    mean_predicted: float
    realised_rate: float
    by_band: list[dict[str, Any]] = field(default_factory=list)
    by_decile: list[dict[str, Any]] = field(default_factory=list)
    save_list: dict[str, Any] | None = None


@dataclass(frozen=True)
class ValueBacktest:
    """An earlier run's expected revenue against the revenue that came in since.

    The expected revenue over the elapsed window is ``expected_purchases x
    expected_avg_value`` (the horizon's revenue, undiscounted and before margin) x
    ``elapsed_share``, spread evenly over the horizon; the realised revenue is the sum of the
    customer's transactions in ``[as_of, as_of + elapsed_days)``. ``mae`` is the mean absolute
    error per customer; ``by_plan`` and ``by_tier`` rows: ``plan_type`` / ``value_tier``,
    ``customers``, ``mean_predicted``, ``mean_realised``, ``mae``. ``p_alive_auc`` is the ROC-AUC
    of ``p_alive`` against who bought again in the window (``bought_rate`` of them did).
    """

    horizon_days: int
    elapsed_days: int
    elapsed_share: float
    basis: str
    customers: int
    mae: float
    mean_predicted: float
    mean_realised: float
    p_alive_auc: float
    bought_rate: float
    by_plan: list[dict[str, Any]] = field(default_factory=list)
    by_tier: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class BacktestReport:
    """The backtest of one earlier committed run (``run_id``, ``as_of``) with the data before
    ``checked_to`` (this run's as_of); aggregates only, never customer rows.

    ``churn`` / ``value`` are None when the earlier run had no such scores; ``not_found``
    counts its scored customers missing from today's customers table (left out). ``skipped``
    lists the runs that were passed over and why (``run_id``, ``reason``); when every
    candidate was skipped, ``run_id`` is None.

    A run checks every earlier committed run it can (at most ``monitoring.backtest_max_runs``):
    ``runs`` holds each one's own report, latest first (their ``runs`` and ``skipped`` empty);
    the other fields are those of the first, the most recent run checked.
    """

    run_id: str | None
    as_of: dt.date | None
    checked_to: dt.date
    model_versions: dict[str, str] = field(default_factory=dict)
    churn: ChurnBacktest | None = None
    value: ValueBacktest | None = None
    not_found: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    drift: DriftReport | None = None
    """``crm-engine backtest`` only: the input side of the drift since the run (the pipeline's
    backtest leaves it None: its drift stage compares the whole run)."""
    runs: list[BacktestReport] = field(default_factory=list)

    @property
    def days_since(self) -> int | None:
        """Days from the run's as_of to ``checked_to`` (its forecasts' age); None without a run."""
        return None if self.as_of is None else (self.checked_to - self.as_of).days

    def metrics(self) -> dict[str, float]:
        """The aggregates as flat MLflow metrics: ``backtest.churn.roc_auc``, ..."""
        out: dict[str, float] = {}
        if self.churn is not None:
            c = self.churn
            out |= {
                "backtest.churn.roc_auc": c.roc_auc,
                "backtest.churn.lift_top_decile": c.lift_top_decile,
                "backtest.churn.brier": c.brier,
                "backtest.churn.realised_rate": c.realised_rate,
                "backtest.churn.mean_predicted": c.mean_predicted,
                "backtest.churn.elapsed_share": c.elapsed_share,
            }
            for row in c.by_band:
                out[f"backtest.churn.{row['churn_risk_band']}.realised_rate"] = row["realised_rate"]
            if c.save_list is not None and c.save_list["realised_rate"] is not None:
                out["backtest.churn.save_list.realised_rate"] = c.save_list["realised_rate"]
        if self.value is not None:
            v = self.value
            out |= {
                "backtest.value.mae": v.mae,
                "backtest.value.mean_predicted": v.mean_predicted,
                "backtest.value.mean_realised": v.mean_realised,
                "backtest.value.p_alive_auc": v.p_alive_auc,
                "backtest.value.elapsed_share": v.elapsed_share,
            }
            for row in v.by_plan:
                out[f"backtest.value.{row['plan_type']}.mae"] = row["mae"]
            for row in v.by_tier:
                out[f"backtest.value.tier.{row['value_tier']}.mae"] = row["mae"]
        out["backtest.skipped_runs"] = float(len(self.skipped))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the manifest's ``backtest``)."""
        return to_jsonable(self)  # type: ignore[no-any-return]


# --- drift: what moved under the models since the previous run ----------------------------


@dataclass(frozen=True)
class DriftAlert:
    """One drift finding worth a line: a column whose PSI reached a threshold, category values
    that appeared or vanished, an input table that vanished.

    ``level`` is ``"alert"`` (``psi >= psi_alert``, or new / vanished values) or ``"warn"``
    (``psi_warn <= psi < psi_alert``); ``regions`` names the regions whose own PSI reached
    ``psi_alert`` when the others' did not (empty otherwise).
    """

    level: str
    kind: str
    column: str
    message: str
    psi: float | None = None
    regions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DriftReport:
    """Drift between the previous committed run (``previous_run_id``, ``previous_as_of``) and this
    one; aggregates only, never customer rows.

    ``fingerprint`` is this run's distributions, which the next run compares with: per numeric
    column its bin edges (deciles, de-duplicated), counts per bin and nulls; per categorical
    column the count of each value; per region the numeric profile features' counts on the same
    edges; the row count of each input table. ``psi`` maps each column compared to its
    population stability index on the previous run's bins, ``psi_by_region`` a numeric feature to
    its PSI within each region; ``categories`` a column to its ``new`` and ``vanished`` values
    with their customer counts; ``rows`` a table to its ``previous`` and ``current`` row counts;
    ``moved`` ``churn_risk_band`` / ``value_tier`` to the ``customers`` in both runs, how many
    ``moved`` and the ``share``.
    """

    fingerprint: dict[str, Any]
    psi_warn: float
    psi_alert: float
    previous_run_id: str | None = None
    previous_as_of: dt.date | None = None
    psi: dict[str, float] = field(default_factory=dict)
    psi_by_region: dict[str, dict[str, float]] = field(default_factory=dict)
    categories: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    rows: dict[str, dict[str, int | None]] = field(default_factory=dict)
    moved: dict[str, dict[str, float]] = field(default_factory=dict)
    alerts: list[DriftAlert] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_alerted: list[str] = field(default_factory=list)
    """Columns measured but never alerted on (they grow with every month a customer stays)."""

    @property
    def compared(self) -> bool:
        """Whether an earlier run was compared with (the first run only records its fingerprint)."""
        return self.previous_run_id is not None and bool(self.psi or self.rows)

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics: ``drift.psi.<column>``, ``drift.moved.<column>``,
        ``drift.rows.<table>`` (relative change), ``drift.alerts``, ``drift.warnings``."""
        if not self.compared:
            return {}
        out = {f"drift.psi.{c}": v for c, v in self.psi.items()}
        out |= {f"drift.moved.{c}": m["share"] for c, m in self.moved.items()}
        for table, r in self.rows.items():
            if r.get("previous") and r.get("current") is not None:
                out[f"drift.rows.{table}"] = r["current"] / r["previous"] - 1  # type: ignore[operator]
        out["drift.alerts"] = float(sum(a.level == "alert" for a in self.alerts))
        out["drift.warnings"] = float(sum(a.level == "warn" for a in self.alerts))
        return out

    def lines(self) -> list[str]:
        """One line per alert and warning, alerts first (the run summary's)."""
        order = sorted(self.alerts, key=lambda a: (a.level != "alert", -(a.psi or 0.0)))
        return [f"drift {'alert' if a.level == 'alert' else 'warning'}: {a.message}" for a in order]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the manifest's ``drift``)."""
        return to_jsonable(self)  # type: ignore[no-any-return]
