"""The valuation stage: profile frame -> per-customer values frame and a report dict; and its
pipeline adapters (holdout and fit, or value with the registered model)."""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from crm_engine.config import ValuationConfig
from crm_engine.contracts import labels_at
from crm_engine.io import map_slices
from crm_engine.parts import FrameParts, Mapper, Parts, laid_out
from crm_engine.stage_reports import SpendReport, ValuationReport
from features import rfm_facts
from valuation.base import PurchaseModel, ValuationError
from valuation.clv import customer_lifetime_value, monthly_discount_rate
from valuation.contract import ContractModel, contract_scores
from valuation.gamma_gamma import GammaGammaModel
from valuation.lifecycle import (
    OPTIONAL_INPUTS,
    STAGES,
    lifecycle_stage_expr,
    with_lifecycle_inputs,
)
from valuation.profit import INTERACTION_COLUMNS, profit_contribution_expr
from valuation.select import AUTO_CANDIDATES, frequency0_model, scoring_model
from valuation.tiers import TIERS, tier_cut_points, value_tier

if TYPE_CHECKING:
    from pipelines.profiles import ProfileMap

PROFILE_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "tenure_days",
    "revenue_365d",
)
"""Profile columns the stage needs (``has_purchase``, interaction counts are optional)."""


def profile_inputs(columns: Collection[str]) -> list[str]:
    """The columns of a profile with ``columns`` that valuing everyone at as_of reads: the
    purchase and spend models' (:data:`PROFILE_COLUMNS`, ``has_purchase``), the lifecycle
    rules' (:data:`~valuation.lifecycle.OPTIONAL_INPUTS`), the profit contribution's
    interaction counts, the contract models' (months left, the hazard's covariates). The run
    reads only these of everyone's profile (at 10M customers ~1.5 GB of its 4.3)."""
    from valuation.hazard import CATEGORICAL, NUMERIC

    wanted = (
        *PROFILE_COLUMNS,
        "has_purchase",
        *OPTIONAL_INPUTS,
        *INTERACTION_COLUMNS,
        "contract_months_left",
        *NUMERIC,
        *CATEGORICAL,
    )
    return [c for c in dict.fromkeys(wanted) if c in columns]


VALUES_SCHEMA = pl.Schema(
    {
        "customer_id": pl.Int64(),
        "p_alive": pl.Float64(),
        "expected_purchases": pl.Float64(),
        "expected_avg_value": pl.Float64(),
        "clv": pl.Float64(),
        "profit_contribution": pl.Float64(),
        "value_tier": pl.String(),
        "lifecycle_stage": pl.String(),
        "value_model": pl.String(),
    }
)
"""Output of :func:`value_customers` (``customer_id`` keeps the profile's id type): the
valuation-owned columns of ``crm.scores/v1``; the RFM facts (``recency_days``, ``frequency``,
``monetary_avg``) belong to the profile (``features.rfm_facts``)."""

CORRELATION_WARN = 0.3
MIN_FIT_CUSTOMERS = 10
"""Fewest customers with a purchase a purchase model is fitted on."""


@dataclass(frozen=True)
class ValuationModels:
    """A fitted purchase model and spend model: what scoring needs besides the config; with a
    contract ``retention`` model (:class:`~valuation.contract.ContractModel`: the sBG or the
    per-customer hazard), postpaid customers are valued by it instead."""

    purchase: PurchaseModel
    spend: GammaGammaModel
    retention: ContractModel | None = None


def _require(names: Collection[str], columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValuationError(
            f"valuation stage: profile is missing column(s) {missing}; got {list(names)}"
        )


BTYD_INPUTS: tuple[str, ...] = (
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "has_purchase",
    "plan_type",
)
"""The profile columns :func:`btyd_frame` reads (the last three when there)."""


def btyd_inputs(profile: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """Of :data:`BTYD_INPUTS`, those ``profile`` has: what fitting the purchase and spend
    models reads of everyone."""
    names = profile.collect_schema().names()
    return [c for c in BTYD_INPUTS if c in names]


def _model_inputs(profile: pl.DataFrame) -> pl.DataFrame:
    """:func:`btyd_frame`'s columns but ``fit``, and ``prepaid``: a purchaser on a prepaid
    plan (never one without ``plan_type``)."""
    _require(profile.columns, ("frequency", "recency", "T"))
    if "monetary_value" not in profile.columns:
        profile = profile.with_columns(pl.lit(0.0).alias("monetary_value"))
    if "has_purchase" in profile.columns:
        has = pl.col("has_purchase").fill_null(False) & pl.col("frequency").is_not_null()
    else:
        has = pl.col("frequency").is_not_null()
    prepaid = has & ~_postpaid_expr() if "plan_type" in profile.columns else pl.lit(False)
    t = pl.col("T").cast(pl.Float64).fill_null(0.0).clip(lower_bound=0.0)
    return profile.select(
        pl.when(has).then(pl.col("frequency").cast(pl.Float64)).otherwise(0.0).alias("frequency"),
        pl.when(has & (pl.col("frequency") > 0))
        .then(pl.min_horizontal(pl.col("recency").cast(pl.Float64).clip(lower_bound=0.0), t))
        .otherwise(0.0)
        .alias("recency"),
        t.alias("T"),
        pl.when(has & (pl.col("frequency") > 0))
        .then(pl.col("monetary_value").cast(pl.Float64).fill_null(0.0))
        .otherwise(0.0)
        .alias("monetary_value"),
        has.alias("purchased"),
        prepaid.fill_null(False).alias("prepaid"),
    )


def _with_fit(inputs: pl.DataFrame, customers: str | None = None) -> pl.DataFrame:
    """``inputs`` (of :func:`_model_inputs`, a row a customer, or as many as its column
    ``customers`` says) with ``fit``: the prepaid purchasers when there are at least
    :data:`MIN_FIT_CUSTOMERS` of them, else every purchaser."""
    prepaid = pl.col("prepaid")
    n_prepaid = inputs.select(
        prepaid.sum() if customers is None else pl.col(customers).filter(prepaid).sum()
    ).item()
    fit = prepaid if (n_prepaid or 0) >= MIN_FIT_CUSTOMERS else pl.col("purchased")
    return inputs.with_columns(fit.alias("fit"))


def btyd_frame(profile: pl.DataFrame) -> pl.DataFrame:
    """The model inputs: ``frequency``, ``recency``, ``T``, ``monetary_value``, ``fit`` and
    ``purchased``.

    Needs ``frequency``, ``recency``, ``T``; ``monetary_value`` (0 when absent) and
    ``has_purchase`` are optional.

    Customers without a purchase (``has_purchase`` false, or null frequency) get
    frequency=0, recency=0, monetary_value=0 and keep their ``T`` (clipped at 0);
    ``purchased`` marks those with a purchase, and ``fit`` the ones the models are fitted on:
    of them only the prepaid ones when the profile has ``plan_type`` and at least
    :data:`MIN_FIT_CUSTOMERS` of them (a postpaid customer's monthly bills are not the
    purchases BG/NBD and Gamma-Gamma describe: mixed in, they skew both fits).
    """
    X = _with_fit(_model_inputs(profile))
    return X.select("frequency", "recency", "T", "monetary_value", "fit", "purchased")


STATISTICS_KEYS = ("frequency", "recency", "T", "monetary_value", "purchased", "prepaid")
"""The columns of :func:`btyd_statistics` whose distinct rows it counts."""


def btyd_statistics(profile: pl.DataFrame) -> pl.DataFrame:
    """What fitting the purchase and spend models needs of ``profile``'s customers (sufficient
    statistics): the distinct rows of their model inputs (:data:`STATISTICS_KEYS`, as
    :func:`btyd_frame` computes them, and whether they are prepaid purchasers) and how many
    customers share each (``customers``).

    A pure function of a slice of customers whose results add up
    (:func:`merge_statistics`): everyone's are summed where the profile lies (on the Spark
    executors, a file at a time) and only the sums reach the fit (:func:`fit_models`)."""
    inputs = _model_inputs(profile)
    return inputs.group_by(STATISTICS_KEYS).agg(pl.len().cast(pl.Int64).alias("customers"))


def merge_statistics(parts: pl.DataFrame) -> pl.DataFrame:
    """:func:`btyd_statistics` of several slices (stacked) summed into those of all of them."""
    return parts.group_by(STATISTICS_KEYS).agg(pl.col("customers").sum())


def everyone_statistics(
    profile: pl.DataFrame | pl.LazyFrame, aggregate: ProfileMap | None = None
) -> pl.DataFrame:
    """:func:`btyd_statistics` of every customer of ``profile``, summed over its slices:
    where it lies with ``aggregate`` (the run's ``ProfileCache.aggregate`` bound to its plan),
    else :data:`VALUE_ROWS` customers at a time here."""
    columns = btyd_inputs(profile)
    if aggregate is not None:
        return merge_statistics(aggregate(btyd_statistics, columns))
    parts = map_slices(profile.lazy().select(columns), btyd_statistics, VALUE_ROWS)
    return merge_statistics(parts)


def fit_models(
    statistics: pl.DataFrame, cfg: ValuationConfig, model: str | None = None
) -> ValuationModels:
    """Fit the purchase model (``model`` or ``cfg.model``) and the Gamma-Gamma spend model on
    the customers' sufficient statistics (:func:`btyd_statistics` of a profile, or
    :func:`everyone_statistics`): each distinct row weighs its customer count, which gives
    the fit on the customers themselves.

    ``"auto"`` here (without a holdout) keeps the candidate with the highest in-sample
    log-likelihood and warns; the value job selects on the holdout instead.
    """
    name = model or cfg.model
    X = _with_fit(statistics.sort(STATISTICS_KEYS), "customers")  # from any row order
    fit_rows = X.filter(pl.col("fit"))
    n_fit = int(fit_rows.get_column("customers").sum())
    if n_fit < MIN_FIT_CUSTOMERS:
        raise ValuationError(
            f"valuation stage: only {n_fit} customer(s) with a purchase; at least "
            f"{MIN_FIT_CUSTOMERS} are needed to fit a purchase model"
        )
    w = fit_rows.get_column("customers").cast(pl.Float64).to_numpy()
    if name == "auto":
        warnings.warn(
            "valuation.model='auto' without a holdout: choosing by in-sample log-likelihood; "
            "run the value job (which validates on a holdout) to select on held-out purchases",
            UserWarning,
            stacklevel=2,
        )
        fitted = []
        for cand in AUTO_CANDIDATES:
            try:
                fitted.append(scoring_model(cand, cfg.penalizer).fit(fit_rows, sample_weight=w))
            except ValuationError:
                continue
        if not fitted:
            raise ValuationError(
                f"model=auto: none of {list(AUTO_CANDIDATES)} converged. Try a larger "
                "valuation.penalizer."
            )
        purchase = max(fitted, key=lambda m: m.log_likelihood_)
    else:
        purchase = scoring_model(name, cfg.penalizer).fit(fit_rows, sample_weight=w)
    spend = GammaGammaModel(penalizer=cfg.penalizer).fit(fit_rows, sample_weight=w)
    return ValuationModels(purchase=purchase, spend=spend)


def score_arrays(
    X: pl.DataFrame, models: ValuationModels, cfg: ValuationConfig
) -> dict[str, np.ndarray]:
    """``p_alive``, ``expected_purchases``, ``expected_avg_value``, ``clv`` for BTYD inputs."""
    p_alive = models.purchase.p_alive(X)
    value = models.spend.expected_avg_value(X)
    expected, clv = customer_lifetime_value(
        models.purchase, X, value, cfg.horizon_days, cfg.annual_discount_rate, cfg.margin
    )
    return {
        "p_alive": p_alive,
        "expected_purchases": expected,
        "expected_avg_value": value,
        "clv": np.maximum(clv, 0.0),
    }


VALUE_ROWS = 250_000
"""Customers valued at a time by :func:`value_customers` and :func:`score_profile`: every value
model computes a row per customer and month ahead (12 at the default horizon), and the whole
population at once took 3.4 GB of such matrices at 10M customers; valuing everyone's columns at
once took 1.6 GB more than the values themselves."""


def score_profile(
    profile: pl.DataFrame, X: pl.DataFrame, models: ValuationModels, cfg: ValuationConfig
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """:func:`score_arrays` for everyone, then the contract values for the postpaid rows when
    ``models.retention`` is set (``profile`` needs ``plan_type``, ``revenue_365d`` and the
    retention model's :meth:`~valuation.contract.ContractModel.input_columns` for them; ``X``
    is its :func:`btyd_frame`, whose ``T`` dates their first payment), :data:`VALUE_ROWS`
    customers at a time.

    Returns
    -------
    scores, contract_rows
        The four value arrays, and which rows the contract model valued.
    """
    rows = _contract_rows(profile, X, models)
    parts = [
        _score_slice(
            profile.slice(start, VALUE_ROWS),
            X.slice(start, VALUE_ROWS),
            rows[start : start + VALUE_ROWS],
            models,
            cfg,
        )
        for start in range(0, max(X.height, 1), VALUE_ROWS)
    ]
    scores = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return scores, rows


def _score_slice(
    profile: pl.DataFrame,
    X: pl.DataFrame,
    rows: np.ndarray,
    models: ValuationModels,
    cfg: ValuationConfig,
) -> dict[str, np.ndarray]:
    scores = score_arrays(X, models, cfg)
    if rows.any() and models.retention is not None:
        # only the columns the contract model reads, not the postpaid rows of every column
        read = dict.fromkeys(("revenue_365d", *models.retention.input_columns()))
        contract = contract_scores(
            models.retention,
            profile.select(c for c in read if c in profile.columns).filter(pl.Series(rows)),
            X.get_column("T").to_numpy()[rows],
            cfg.horizon_days,
            cfg.annual_discount_rate,
            cfg.margin,
        )
        for k, v in contract.items():
            scores[k] = np.asarray(scores[k], dtype=np.float64).copy()
            scores[k][rows] = v
    return scores


def _postpaid_expr() -> pl.Expr:
    return (pl.col("plan_type") == "postpaid").fill_null(False)


def _contract_rows(profile: pl.DataFrame, X: pl.DataFrame, models: ValuationModels) -> np.ndarray:
    """The rows the contract retention model values, when there is one: postpaid customers
    who have paid a bill (without one there is no bill to carry forward: the purchase model
    values them)."""
    if models.retention is None or "plan_type" not in profile.columns:
        return np.zeros(profile.height, dtype=bool)
    postpaid = profile.select(_postpaid_expr()).to_series().to_numpy()
    return postpaid & X.get_column("purchased").to_numpy()


def _round(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass
class _Counts:
    """What the report counts of the valued customers, added up over the parts of everyone
    (:func:`_tally`): the sums of :func:`value_slice`'s :data:`COUNTED` flags, the customers,
    their CLV and P(alive), by lifecycle stage and by tier."""

    without_purchase: int = 0
    frequency0: int = 0
    contract: int = 0
    unbilled: int = 0
    customers: int = 0
    total_clv: float = 0.0
    mean_p_alive: float = 0.0
    stages: dict[str, int] = dataclasses.field(default_factory=dict)
    tiers: dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, tallies: pl.DataFrame) -> _Counts:
        """The counts from :func:`_tally`'s rows of every part."""
        flags = [int(tallies.get_column(c).sum()) for c in COUNTED]
        p_alive = float(tallies.get_column("p_alive").sum())
        known = int(tallies.get_column("p_alive_n").sum())

        def by(column: str, names: Collection[str]) -> dict[str, int]:
            sums = tallies.group_by(column).agg(pl.col("n").sum())
            found = dict(zip(sums.get_column(column), sums.get_column("n"), strict=True))
            return {name: int(found.get(name, 0)) for name in names}

        return cls(
            **{c.removeprefix("_"): v for c, v in zip(COUNTED, flags, strict=True)},
            customers=int(tallies.get_column("n").sum()),
            total_clv=float(tallies.get_column("clv").sum()),
            mean_p_alive=p_alive / known if known else 0.0,
            stages=by("lifecycle_stage", STAGES),
            tiers=by("value_tier", TIERS),
        )


COUNTED = ("_without_purchase", "_frequency0", "_contract", "_unbilled")
"""The flags :func:`value_slice` adds per customer for the report's counts (summed by
:func:`_tally`, then dropped)."""


def _tally(valued: pl.DataFrame, cut_points: Sequence[float]) -> pl.DataFrame:
    """A slice of :func:`value_slice`'s rows counted for the report (:meth:`_Counts.of` adds
    the slices up): by lifecycle stage and tier (``cut_points``), the customers, the
    :data:`COUNTED` flags, the sum of CLV and of the known P(alive)."""
    return valued.group_by("lifecycle_stage", value_tier(cut_points)).agg(
        pl.len().cast(pl.Int64).alias("n"),
        *(pl.col(c).cast(pl.Int64).sum() for c in COUNTED),
        pl.col("clv").sum(),
        pl.col("p_alive").sum(),
        pl.col("p_alive").count().cast(pl.Int64).alias("p_alive_n"),
    )


def value_slice(
    profile: pl.DataFrame, *, models: ValuationModels, cfg: ValuationConfig
) -> pl.DataFrame:
    """The values of a slice of customers but their tier (the one step that needs everyone's
    CLV), with the :data:`COUNTED` flags the report counts. A pure function of the slice and
    the fitted models, so it runs wherever the rows are (on the executors with the Spark
    backend: ``ProfileCache.map``)."""
    X = btyd_frame(profile)
    postpaid = _contract_rows(profile, X, models)
    scores = _score_slice(profile, X, postpaid, models, cfg)
    frequency = X.get_column("frequency")
    f0_rows = (frequency == 0).to_numpy()
    names = (
        models.purchase.model_name,
        frequency0_model(models.purchase).model_name,
        "" if models.retention is None else models.retention.model_name,
    )
    value_model = labels_at("value_model", names, np.where(postpaid, 2, f0_rows.astype(np.int8)))
    # lifecycle reads the days since the last purchase (the profile's, see features.rfm_facts)
    recency_days = X.select(rfm_facts(pl.col("purchased"))[0]).get_column("recency_days")
    values = (
        profile.select(
            pl.col("customer_id"),
            pl.col("tenure_days").cast(pl.Int64),
            recency_days,
            frequency,
            profit_contribution_expr(profile.columns, cfg.margin, cfg.cost_per_interaction),
            *(pl.col(c) for c in OPTIONAL_INPUTS if c in profile.columns),
        )
        .pipe(with_lifecycle_inputs)
        .with_columns(*(pl.Series(k, v, dtype=pl.Float64) for k, v in scores.items()), value_model)
        .with_columns(lifecycle_stage_expr(cfg.lifecycle))
        .select(c for c in VALUES_SCHEMA.names() if c != "value_tier")
    )
    unbilled = _contract_rows(profile, X.with_columns(purchased=True), models) & ~postpaid
    flags = (~X.get_column("purchased").to_numpy(), f0_rows, postpaid, unbilled)
    return values.with_columns(
        pl.Series(name, flag, dtype=pl.Boolean) for name, flag in zip(COUNTED, flags, strict=True)
    )


def value_customers(
    profile: pl.DataFrame | pl.LazyFrame,
    cfg: ValuationConfig,
    model: ValuationModels | str | None = None,
    map_everyone: Callable[[Mapper], Parts] | None = None,
) -> tuple[pl.DataFrame | pl.LazyFrame, ValuationReport]:
    """Score every customer of the profile: P(alive), expected purchases, CLV, tier, stage.

    Customers are valued :data:`VALUE_ROWS` at a time; the tiers' cut points (CLV quantiles of
    everyone) and the report's counts are the steps over all of them, aggregates of the
    valued parts where they lie.

    Parameters
    ----------
    profile
        One row per customer with ``customer_id``, ``frequency``, ``recency``, ``T``,
        ``monetary_value`` (days, lifetimes definitions), ``tenure_days``, ``revenue_365d``;
        optional ``has_purchase``, ``complaints_365d``, ``inquiries_365d``. A plan (the run's
        profile waiting in its scratch) is read a slice at a time.
    cfg
        The valuation section of the pipeline config.
    model
        Fitted :class:`ValuationModels` to score without refitting, a purchase model name
        overriding ``cfg.model`` (what the value job passes after a holdout selection), or
        None to fit ``cfg.model``.
    map_everyone
        Applies :func:`value_slice` to the same customers where their profile lies and
        leaves the results there (the run's ``ProfileCache.map_parts``: in memory here, the
        executors' files with Spark); None: :data:`VALUE_ROWS` customers of ``profile`` at a
        time here.

    Returns
    -------
    values, report
        ``values`` follows :data:`VALUES_SCHEMA`: in memory, in the profile's row order; or,
        of parts that lie elsewhere (Spark), a plan over them that the driver collects the
        columns it needs of (no row read before), and from which churn scoring gets the parts
        back (:func:`crm_engine.parts.laid_out`) to join its own to them there. The
        :class:`~crm_engine.stage_reports.ValuationReport` holds the model, its parameters
        (per day), spend parameters, the frequency/monetary correlation, tier cut points and
        counts. No customer rows.

    Raises
    ------
    ValuationError
        Missing columns, too few purchasers, a model that does not converge or gives
        non-finite predictions.
    """
    _require(profile.collect_schema().names(), PROFILE_COLUMNS)
    if isinstance(model, ValuationModels):
        models = model
    else:
        models = fit_models(everyone_statistics(profile), cfg, model)
    value = functools.partial(value_slice, models=models, cfg=cfg)
    if map_everyone is None:
        valued: Parts = FrameParts(map_slices(profile, value, VALUE_ROWS))
    else:
        valued = map_everyone(value)
    cuts = tier_cut_points(valued, cfg.tier_quantiles)
    counts = _Counts.of(valued.aggregate(functools.partial(_tally, cut_points=cuts)))
    tiered = valued.with_columns(value_tier(cuts)).select(VALUES_SCHEMA.names())
    values: pl.DataFrame | pl.LazyFrame = laid_out(tiered)  # churn scoring joins the parts
    if isinstance(valued, FrameParts):  # in memory: the frame, in the profile's row order
        values = values.collect()
    del valued, tiered
    p, spend = models.purchase, models.spend
    f0 = frequency0_model(p)
    n_f0 = counts.frequency0
    corr = spend.frequency_monetary_corr_
    notes = []
    if n_f0 and f0 is not p:
        notes.append(
            f"{p.model_name} gives P(alive) = 1 to every customer without a repeat purchase, "
            f"however long their silence: the {n_f0:,} customers with frequency 0 were valued "
            f"(P(alive), expected purchases, CLV) by {f0.model_name} fitted on the same customers"
        )
    elif n_f0 and not f0.frequency0_dropout:
        notes.append(
            f"{p.model_name} gives P(alive) = 1 to the {n_f0:,} customers without a repeat "
            "purchase (a model fitted before frequency-0 customers got their own model): refit "
            "to value them; lifecycle still places the long silent ones at_risk or dormant"
        )
    unbilled = counts.unbilled
    if unbilled:
        notes.append(
            f"{unbilled:,} postpaid customers have paid no bill yet: valued by "
            f"{frequency0_model(p).model_name}, the purchase model (value_model says so)"
        )
    if math.isfinite(corr) and abs(corr) > CORRELATION_WARN:
        notes.append(
            f"frequency and monetary value correlate (r={corr:.2f}); Gamma-Gamma assumes "
            "independence, so expected spend may be biased"
        )
    report = ValuationReport(
        model=p.model_name,
        time_unit="days",
        params=dict(p.params_),
        population_rates_per_day=p.population_rates(),
        log_likelihood=p.log_likelihood_,
        n_customers_fitted=p.n_customers_,
        n_distinct_triples=p.n_triples_,
        penalizer=p.penalizer,
        spend=SpendReport(
            model=spend.model_name,
            params=dict(spend.params_),
            population_mean=spend.population_mean_,
            log_likelihood=spend.log_likelihood_,
            n_customers_fitted=spend.n_customers_,
            n_customers_excluded=spend.n_excluded_,
            frequency_monetary_corr=_round(corr),
        ),
        horizon_days=cfg.horizon_days,
        annual_discount_rate=cfg.annual_discount_rate,
        monthly_discount_rate=monthly_discount_rate(cfg.annual_discount_rate),
        margin=cfg.margin,
        n_customers_scored=counts.customers,
        n_customers_without_purchase=counts.without_purchase,
        n_customers_frequency0=n_f0,
        frequency0_model=f0.model_name,
        frequency0_params=dict(f0.params_),
        retention=None if models.retention is None else models.retention.summary(),
        retention_model=None if models.retention is None else models.retention.model_name,
        n_customers_contract=counts.contract,
        n_postpaid_unbilled=unbilled,
        total_clv=counts.total_clv,
        mean_p_alive=counts.mean_p_alive,
        tier_cut_points=dict(zip(TIERS[1:], cuts, strict=True)),
        tier_counts=counts.tiers,
        lifecycle_counts=counts.stages,
        notes=notes,
    )
    return values, report
