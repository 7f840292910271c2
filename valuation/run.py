"""One valuation: holdout (and model selection), fit at as_of, value every customer; and the
pipeline's valuation stages (training, and loading from the registry)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from crm_engine.config import ValuationConfig
from crm_engine.stage_reports import ValuationReport
from crm_engine.tracking import REGISTERED_MODELS, load_registered, require_registered
from features import CustomerSample, PointInTime
from features.sample import covering
from pipelines.runner import StageContext, StageOutput
from valuation.base import ValuationError
from valuation.contract import contract_ends
from valuation.holdout import HoldoutResult, holdout_validation, purchase_days
from valuation.revenue import RevenueHoldout, revenue_holdout
from valuation.select import AUTO_CANDIDATES, contract_candidates, make_contract_model
from valuation.stage import (
    ValuationModels,
    everyone_statistics,
    fit_models,
    profile_inputs,
    value_customers,
)

if TYPE_CHECKING:
    from pipelines.profiles import PartsMap, ProfileMap

__all__ = [
    "ValuationRun",
    "run_valuation",
    "valuation_registry_stage",
    "valuation_stage",
]


@dataclass
class ValuationRun:
    """Everything one valuation produced (frames and aggregates; nothing written)."""

    values: pl.DataFrame | pl.LazyFrame
    """Everyone's values (:func:`~valuation.stage.value_customers`): in memory, or a plan over
    the executors' files (Spark)."""
    report: ValuationReport
    models: ValuationModels
    holdout: HoldoutResult | None


def _postpaid_note(revenue: RevenueHoldout | None, choice: str, error: str | None) -> str | None:
    """Why ``postpaid_model = "auto"`` valued postpaid customers the way it did (None: there
    were none at the revenue holdout's cut)."""
    if revenue is None:
        return f"postpaid customers valued by {choice}: {error}"
    errors = {**revenue.contract_errors()}
    purchase = revenue.mae("postpaid", revenue.purchase_model)
    if purchase is None:
        return None
    errors[revenue.purchase_model] = purchase
    failed = "; ".join(f"no {name} model ({why})" for name, why in revenue.errors.items())
    others = [f"{mae:,.2f} for {name}" for name, mae in errors.items() if name != choice]
    note = (
        f"postpaid customers valued by {choice}: over the {revenue.days} days from "
        f"{revenue.cut}, its revenue error per postpaid customer was {errors[choice]:,.2f} "
        f"against {' and '.join(others)}"
        if others
        else f"postpaid customers valued by {choice}"
    )
    return f"{note}; {failed}" if failed else note


def _profiles_read(
    at: PointInTime, cfg: ValuationConfig
) -> tuple[list[dt.date], CustomerSample | None]:
    """The earlier cuts this valuation reads profiles at, and a sample holding the customers
    read there: the holdouts' cuts (of ``at.sample``) and the cuts the contract models learn
    from, at ``as_of`` and at the revenue holdout's cut. Announced together (``at.expect``), a
    backend that batches (Spark) computes them in one job, not one a step."""
    reads: list[tuple[list[dt.date], CustomerSample | None]] = []
    points = [(at, contract_candidates(cfg))]
    since = at.start.first_day
    if cfg.holdout_days > 0 and since is not None:
        holdout = at.as_of - dt.timedelta(days=cfg.holdout_days)
        revenue = at.as_of - dt.timedelta(days=cfg.horizon_days)
        reads.append(([c for c in (holdout, revenue) if c > since], at.sample))
        at_revenue = dataclasses.replace(at, as_of=revenue)
        points.append((at_revenue, contract_candidates(cfg, measured=True)))
    for point, names in points:
        for name in names:
            try:
                reads.append(make_contract_model(name, cfg).profiles_read(point))
            except ValuationError:
                continue  # the fit says why, when it runs
    reads = [(cuts, sample) for cuts, sample in reads if cuts]
    cuts = sorted({c for read, _ in reads for c in read})
    return cuts, covering(sample for _, sample in reads)


def run_valuation(
    at: PointInTime,
    cfg: ValuationConfig,
    profile: pl.LazyFrame | None = None,
    map_profile: PartsMap | None = None,
    sum_profile: ProfileMap | None = None,
) -> ValuationRun:
    """Validate on a holdout (selecting the model when ``cfg.model = "auto"``), then fit on the
    profile at ``at.as_of`` and score every customer.

    The holdout refits with the cut moved back by ``cfg.holdout_days`` and compares with the
    purchases that really happened up to ``as_of``; ``holdout_days = 0`` skips it (not allowed
    with ``auto``).

    Parameters
    ----------
    at
        The run's point in time: ``as_of`` (first day not observed), the profiles by cut, the
        transactions (the holdout's actual purchases) and customers, when the transactions
        begin, and ``sample``, the customers the holdouts compare on (None: everyone; the
        pipeline bounds it by ``valuation.max_holdout_customers``). The fit at ``as_of`` sees
        everyone.
    cfg
        The ``[valuation]`` section. With ``postpaid_model = "contract"`` (the sBG,
        :mod:`valuation.contract`) or ``"hazard"`` (each customer's own monthly hazard,
        :mod:`valuation.hazard`) the retention of the postpaid customers is fitted on their
        observed churn since the first transaction and values them; ``"auto"`` keeps the one
        with the lowest revenue holdout error, or the purchase model. Too few of them to fit
        leaves them to the purchase model, with a note in the report.
    profile
        Everyone's profile at ``as_of`` as a plan (the pipeline's, waiting in its scratch): of
        it only :func:`~valuation.stage.profile_inputs` are read. None: ``at.profile_at``.
    map_profile
        Applies a per-customer function to ``profile`` where it lies, reading the columns it
        is given, and leaves the results there (the run's ``ProfileCache.map_parts`` bound to
        its plan: on the executors with Spark); everyone is valued through it, and the tiers
        and counts are aggregates of those parts. None: here.
    sum_profile
        Applies a function of a slice whose rows add up (:func:`~valuation.stage.btyd_statistics`,
        the fits' sufficient statistics) to ``profile`` where it lies (the run's
        ``ProfileCache.aggregate``: on the executors with Spark); only its rows reach the
        fit. None: here, a slice at a time.

    Raises
    ------
    ValuationError
        ``auto`` without a holdout, or no model can be fitted.
    """
    at.expect(*_profiles_read(at, cfg))
    profile_at, as_of, sample = at.profile_at, at.as_of, at.sample
    transactions = at.sample_tables()["transactions"]  # the sample's rows, where they lie
    holdout: HoldoutResult | None = None
    holdout_error: str | None = None
    model_name = cfg.model
    if cfg.holdout_days > 0:
        candidates = AUTO_CANDIDATES if cfg.model == "auto" else (cfg.model,)
        try:
            holdout = holdout_validation(
                profile_at,
                lambda start, days, sample: purchase_days(
                    transactions, start, days, sample
                ).collect(),
                as_of,
                cfg,
                models=candidates,
                sample=sample,
            )
        except ValuationError as e:
            if cfg.model == "auto":
                raise
            holdout_error = str(e)
        if cfg.model == "auto" and holdout is not None:
            model_name = holdout.best
    elif cfg.model == "auto":
        raise ValuationError(
            "valuation.model='auto' selects on a holdout: set valuation.holdout_days > 0"
        )

    # everyone's profile is read (what each step needs of it) for the fit and again to value
    # them a slice at a time, not held between: the holdouts and the contract fit below build
    # their own cuts
    everyone: pl.DataFrame | pl.LazyFrame = (
        profile_at(as_of, None)
        if profile is None
        else profile.select(profile_inputs(profile.collect_schema().names()))
    )
    models = fit_models(everyone_statistics(everyone, sum_profile), cfg, model_name)
    notes: list[str] = []
    revenue: RevenueHoldout | None = None
    revenue_error: str | None = None
    if cfg.holdout_days == 0:
        revenue_error = "valuation.holdout_days = 0 skips it"
    else:
        try:
            measured = contract_candidates(cfg, measured=True)
            revenue = revenue_holdout(at, cfg, models.purchase.model_name, measured)
        except ValuationError as e:
            revenue_error = str(e)
    candidates = contract_candidates(cfg)
    contract = candidates[0] if len(candidates) == 1 else None
    if cfg.postpaid_model == "auto":
        choice = models.purchase.model_name if revenue is None else revenue.postpaid_choice()
        contract = choice if choice in candidates else None
        note = _postpaid_note(revenue, choice, revenue_error)
        notes += [note] if note else []
    if contract is not None:
        try:
            retention = make_contract_model(contract, cfg).fit_at(at)
            models = dataclasses.replace(models, retention=retention)
        except ValuationError as e:
            notes.append(f"postpaid customers valued by {models.purchase.model_name}: {e}")
    mapper = None
    if map_profile is not None:
        mapper = functools.partial(map_profile, columns=everyone.collect_schema().names())
    values, report = value_customers(everyone, cfg, models, mapper)
    report = dataclasses.replace(
        report,
        as_of=as_of,
        model_requested=cfg.model,
        holdout=holdout,
        holdout_error=holdout_error,
        revenue_holdout=revenue,
        revenue_holdout_error=revenue_error,
        notes=[*report.notes, *notes],
        contract_ends=contract_ends(everyone, values, as_of),
    )
    return ValuationRun(values=values, report=report, models=models, holdout=holdout)


# --- the pipeline stage (training, and loading from the registry) ---------------------------


def valuation_stage(
    ctx: StageContext, tables: dict[str, pl.LazyFrame], profile: pl.LazyFrame | None = None
) -> StageOutput:
    """Holdout (model selection with ``auto``), fit at as_of, value every customer (of the
    catalog's ``profile`` plan only :func:`profile_inputs` are read).

    Logs the CLV pyfunc model (registered as ``crm-clv`` when ``mlflow.register_models``)
    inside the runner's nested run when ``ctx.tracking``.
    """
    from valuation.holdout import plot_holdout

    cfg = ctx.cfg.valuation
    at = ctx.point_in_time(cfg.max_holdout_customers)
    if profile is None:
        run = run_valuation(at, cfg)
    else:  # everyone valued where the profile lies (on the executors with Spark)
        run = run_valuation(
            at,
            cfg,
            profile,
            functools.partial(ctx.profiles.map_parts, profile),
            functools.partial(ctx.profiles.aggregate, profile),
        )
    artifacts: dict[str, Path] = {}
    if run.holdout is not None and any(m is not None for m in run.holdout.metrics.values()):
        artifacts["valuation_holdout.png"] = plot_holdout(
            run.holdout, ctx.workdir / "valuation" / "valuation_holdout.png"
        )
    versions: dict[str, str] = {}
    if ctx.tracking:
        from valuation.pyfunc import log_valuation_model

        reg = REGISTERED_MODELS["clv"] if ctx.cfg.mlflow.register_models else None
        info = log_valuation_model(
            run.models.purchase,
            run.models.spend,
            cfg,
            registered_model_name=reg,
            retention=run.models.retention,
        )
        versions["clv"] = str(info.registered_model_version or info.model_uri)
    spend = run.report.spend
    metrics: dict[str, Any] = {
        "valuation.log_likelihood": run.report.log_likelihood,
        "valuation.n_customers_fitted": run.report.n_customers_fitted,
        "valuation.n_customers_without_purchase": run.report.n_customers_without_purchase,
        "valuation.spend.log_likelihood": spend.log_likelihood,
        "valuation.spend.n_customers_fitted": spend.n_customers_fitted,
        "valuation.total_clv": run.report.total_clv,
        "valuation.mean_p_alive": run.report.mean_p_alive,
    }
    if run.holdout is not None:
        for name, m in run.holdout.metrics.items():
            if m is not None:
                metrics[f"valuation.holdout.{name}.mae"] = m["mae"]
    if run.report.revenue_holdout is not None:
        for row in run.report.revenue_holdout.rows:
            metrics[f"valuation.revenue_holdout.{row['plan_type']}.{row['model']}.mae"] = row["mae"]
    params = {f"valuation.{k}": v for k, v in run.report.params.items()}
    params["valuation.model"] = run.report.model
    params["valuation.spend.model"] = spend.model
    params |= {f"valuation.spend.{k}": v for k, v in spend.params.items()}
    if run.models.retention is not None:
        name = run.models.retention.model_name
        params["valuation.postpaid_model"] = name
        for k, v in (run.report.retention or {}).items():
            metrics[f"valuation.{name}.{k}"] = v
        metrics["valuation.n_contract"] = run.report.n_customers_contract
        metrics["valuation.n_postpaid_unbilled"] = run.report.n_postpaid_unbilled
    return StageOutput(
        outputs={"values": run.values},
        metrics=metrics,
        params=params,
        report=run.report,
        artifacts=artifacts,
        model_versions=versions,
    )


def valuation_registry_stage(
    ctx: StageContext, profile: pl.DataFrame | pl.LazyFrame
) -> StageOutput:
    """Values from the latest registered CLV model (no refit, no holdout)."""
    from valuation.pyfunc import load_clv_model

    uri = require_registered("clv")
    columns = profile_inputs(profile.collect_schema().names())
    values, report = value_customers(
        profile.lazy().select(columns),
        ctx.cfg.valuation,
        model=load_registered(uri, load_clv_model),
        map_everyone=functools.partial(ctx.profiles.map_parts, profile, columns=columns),
    )
    return StageOutput(
        outputs={"values": values},
        params={"model_uri": uri},
        report=dataclasses.replace(report, model_uri=uri),
        model_versions={"clv": uri},
    )
