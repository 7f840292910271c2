"""The churn stage: train the churn and loyalty models on the earlier cuts (or load them from the
registry), score the profile at as_of, and say what acting on the scores is worth."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from churn.frames import with_extras
from churn.scoring import (
    LOST_STAGE,
    ChurnScores,
    add_loyalty,
    lifecycle_by_band,
    predict_customers,
    score_churn,
)
from churn.training import train_models, write_plots
from crm_engine.contracts import score_values
from crm_engine.memory import release_freed
from crm_engine.parts import (
    FrameParts,
    Parts,
    count_rows,
    exact_quantiles,
    exact_sums,
    laid_out,
    parts_of,
)
from crm_engine.stage_reports import (
    ChurnReport,
    ContagionReport,
    FeatureImportance,
    RetentionReport,
)
from crm_engine.tracking import (
    REGISTERED_MODELS,
    load_registered,
    registered_model_uri,
    require_registered,
)
from pipelines.runner import StageContext, StageOutput

if TYPE_CHECKING:
    from churn.loyalty import LoyaltyModel
    from churn.model import ChurnModel


def _scoring_frame(
    ctx: StageContext, profile: pl.DataFrame | pl.LazyFrame
) -> pl.DataFrame | pl.LazyFrame:
    """What the models score: the profile (a plan stays one, read a slice at a time), with the
    configured customers-table attributes joined on once (``churn.extra_features``)."""
    extras = ctx.cfg.churn.extra_features
    if not extras:
        return profile
    return with_extras(profile.lazy(), ctx.tables, extras).collect()


def _predict(
    batch: pl.DataFrame,
    *,
    tables: dict[str, pl.LazyFrame],
    extras: list[str],
    churn_model: ChurnModel,
    loyalty_model: LoyaltyModel | None,
) -> pl.DataFrame:
    """:func:`churn.predict_customers` of a slice of the profile, with the configured
    customers-table attributes joined on first (as :func:`_scoring_frame` joins them)."""
    scoring = with_extras(batch.lazy(), tables, extras).collect() if extras else batch
    return predict_customers(scoring, churn_model, loyalty_model)


def _retention(
    ctx: StageContext, model: ChurnModel, scores: Parts, valued: Parts
) -> tuple[RetentionReport, Path] | None:
    """What acting on the scores is worth: EMPC out of time and this run's contact set, from
    aggregates of the churn ``scores`` (``retention_profit``) and the ``valued`` customers
    where they lie.

    The validation cut's report half has known outcomes but no CLV of its own: every customer
    there is valued at the mean CLV of this run's customers who could be contacted (not lost).
    None when nobody could be (everyone lost, or no CLV).
    """
    from churn.plots import plot_profit_curve
    from churn.profit import empc, planned_curve, profit_curve

    terms = ctx.cfg.retention
    gain = pl.col("retention_profit")
    could = (pl.col("lifecycle_stage").fill_null("") != LOST_STAGE) & pl.col("clv").is_not_null()
    candidates, contacts = count_rows(scores, gain.is_not_null(), gain > 0)
    (worth,) = count_rows(valued, could)
    if candidates == 0 or worth == 0:
        return None
    worth_sum, expected = exact_sums(valued, pl.when(could).then("clv")) + exact_sums(
        scores, pl.when(gain > 0).then(gain)
    )
    value = worth_sum / worth
    y, p = model.report_y_, model.report_p_
    checked = empc(y, p, value, terms)
    path = plot_profit_curve(
        profit_curve(y, p, value, terms),
        planned_curve(scores),
        ctx.workdir / "churn" / "churn_profit.png",
    )
    report = RetentionReport(
        offer_cost=terms.offer_cost,
        contact_cost=terms.contact_cost,
        accept_rate=terms.accept_rate,
        accept_concentration=terms.accept_concentration,
        customer_value=checked.customer_value,
        empc=checked.empc,
        empc_share=checked.share,
        profit_at_mean=checked.profit_at_mean,
        share_at_mean=checked.share_at_mean,
        contacts=contacts,
        candidates=candidates,
        expected_profit=expected,
    )
    return report, path


def _contagion(
    ctx: StageContext, scores: Parts, profile: Parts, valued: Parts
) -> tuple[Parts, ContagionReport | None, dict[str, Path]]:
    """``scores`` with the network columns (``[contagion]``: :mod:`churn.contagion`,
    :mod:`churn.network`), what the estimate found and its picture, computed where the parts
    lie (``profile``'s ``n_contacts``, ``valued``'s ``clv``: of the same customers in the same
    parts); ``scores`` unchanged and None when disabled, without a call graph or when the
    history holds nothing to estimate from (a warning says so)."""
    from churn.contagion import estimate_contagion
    from churn.network import network_points, with_network_value
    from churn.plots import plot_network_value

    cfg = ctx.cfg
    if not cfg.contagion.enabled or "calls" not in ctx.tables:
        return scores, None, {}
    sample = ctx.bounded_sample(cfg.contagion.max_customers)
    tables = ctx.tables
    if sample is not None:  # its calls and complaints where they lie; a contact is anyone
        tables = {**ctx.profiles.sampled(sample), "customers": ctx.tables["customers"]}
    try:
        found = estimate_contagion(
            tables,
            ctx.as_of,
            months=cfg.contagion.months,
            contagion_days=cfg.features.contagion_days,
            sample=sample,
            max_rows=cfg.contagion.max_rows,
        )
    except ValueError as e:
        import warnings

        warnings.warn(f"no network value: {e}", stacklevel=2)
        return scores, None, {}
    graph = ctx.profiles.contacts()  # Spark: on the executors, the sums too
    degrees = profile.select(["customer_id", "n_contacts"])  # no second pass over calls
    out = with_network_value(
        scores, valued, degrees, graph, found, horizon_days=cfg.churn.horizon_days
    )
    with_contacts = pl.when(pl.col("n_contacts") > 0).then(pl.col("n_contacts"))
    median = (exact_quantiles(degrees, with_contacts, [0.5]) or [1.0])[0]
    network, own = exact_sums(out, "value_at_risk_network", "value_at_risk")
    (with_value,) = count_rows(out, pl.col("network_value") > 0)
    report = ContagionReport(
        **found.to_dict(),
        median_contacts=int(median),
        odds_factor=found.odds_factor(int(median)),
        value_at_risk_network=network,
        value_at_risk=own,
        customers_with_network_value=with_value,
    )
    picture = plot_network_value(network_points(out), ctx.workdir / "churn" / "churn_network.png")
    return out, report, {"churn_network": picture}


def _contagion_metrics(report: ContagionReport | None) -> dict[str, float]:
    if report is None:
        return {}
    return {
        "contagion.coefficient": report.coefficient,
        "contagion.std_error": report.std_error,
        "contagion.significant": float(report.significant),
        "network.value_at_risk": report.value_at_risk_network,
        **{f"churn_hazard.{name}": coef for name, (coef, _) in report.controls.items()},
    }


@dataclass
class _Scored:
    """What scoring the profile at as_of gave (both churn stages score the same way)."""

    frame: pl.DataFrame | pl.LazyFrame
    """The churn and loyalty columns of the scores contract: in memory, or the plan of the
    parts where they lie (:func:`crm_engine.parts.laid_out`)."""
    churn: ChurnScores
    """The churn columns and what :func:`churn.score_churn` measured."""
    contagion: ContagionReport | None
    metrics: dict[str, float]
    artifacts: dict[str, Path]
    valued: Parts | None
    """The values of the same customers where they lie (None without them)."""
    lifecycle_by_band: dict[str, dict[str, int]] | None
    """:func:`churn.lifecycle_by_band` of the scores and the values (None without them)."""


def _score(
    ctx: StageContext,
    profile: pl.DataFrame | pl.LazyFrame,
    values: pl.DataFrame | pl.LazyFrame | None,
    churn_model: ChurnModel,
    loyalty_model: LoyaltyModel | None,
) -> _Scored:
    """Churn scores of ``profile`` (with value at risk and lost customers from the
    valuation's ``values``), then the network columns and the loyalty columns. Everyone's
    profile is scored where it lies (on the executors with Spark), and the values of everyone
    are joined to the predictions there (:func:`crm_engine.parts.parts_of`); a plan (the run's
    profile) is read a slice at a time here."""
    scoring = _scoring_frame(ctx, profile)
    extras = ctx.cfg.churn.extra_features
    predict = functools.partial(
        _predict,
        tables=ctx.tables if extras else {},
        extras=extras,
        churn_model=churn_model,
        loyalty_model=loyalty_model,
    )
    rows: Parts
    predictions: Parts
    if extras:  # the customers-table attributes are joined on here: so are the predictions
        rows, predictions = FrameParts(scoring), FrameParts(ctx.profiles.map(profile, predict))
    else:  # on the executors with Spark, the predictions beside the profile's files
        rows, predictions = ctx.profiles.parts(profile), ctx.profiles.map_parts(profile, predict)
    valued = None if values is None else parts_of(values)
    scored = score_churn(rows, churn_model, ctx.cfg.churn, valued, ctx.cfg.retention, predictions)
    churn = add_loyalty(scored.parts, scoring, loyalty_model, predictions)
    metrics: dict[str, float] = {"churn.n_explained": scored.n_explained}
    artifacts: dict[str, Path] = {}
    contagion = None
    crosstab = None
    if valued is not None:
        crosstab = lifecycle_by_band(scored.parts, valued, score_values("lifecycle_stage"))
        churn, contagion, artifacts = _contagion(ctx, churn, rows, valued)
        metrics |= _contagion_metrics(contagion)
        metrics["churn.n_lost"] = scored.n_lost
    frame: pl.DataFrame | pl.LazyFrame = laid_out(churn)  # the assembly joins the parts
    if isinstance(churn, FrameParts):  # in memory: the frame, in the profile's row order
        frame = frame.collect()
    return _Scored(frame, scored, contagion, metrics, artifacts, valued, crosstab)


def churn_stage(
    ctx: StageContext,
    tables: dict[str, pl.LazyFrame],
    profile: pl.DataFrame | pl.LazyFrame,
    values: pl.DataFrame | pl.LazyFrame | None = None,
    *,
    score: bool = True,
) -> StageOutput:
    """Train on the earlier cuts (stacked snapshots, validated on ``as_of - h``), then (with
    ``score``) score ``profile`` at as_of.

    With the valuation stage's ``values``, ``clv`` gives value at risk and dormant customers
    are lost (band ``lost``, see ``churn.score_churn``); the report then holds the
    ``lifecycle_by_band`` cross-tab of the scored customers. Models are logged (and
    registered when ``mlflow.register_models``) inside the runner's nested MLflow run when
    ``ctx.tracking``. ``score=False`` (``crm-engine churn train``) only trains and reports.
    ``profile`` is read only to score, after the training, a slice at a time (in the
    pipeline it is a scan: at 10M customers neither the fits nor scoring hold the 4.3 GB of
    everyone's profile).
    """
    cfg = ctx.cfg
    # the cuts' profiles are handed over: no later stage needs them, nor do the fits
    at = ctx.point_in_time(cfg.churn.max_training_customers, hand_over=True)
    training = train_models(at, cfg)
    versions: dict[str, str] = {}
    if ctx.tracking:
        import mlflow

        from churn.pyfunc import log_churn_model, log_loyalty_model

        reg = cfg.mlflow.register_models
        info = log_churn_model(
            training.churn, registered_model_name=REGISTERED_MODELS["churn"] if reg else None
        )
        versions["churn"] = str(info.registered_model_version or info.model_uri)
        if training.challenger is not None:  # the learner auto did not keep: compare it
            info = log_churn_model(training.challenger, name="churn_model_challenger")
            mlflow.set_tag(
                "crm.churn_challenger", f"{training.challenger.learner} {info.model_uri}"
            )
        if training.loyalty is not None:
            info = log_loyalty_model(
                training.loyalty,
                registered_model_name=REGISTERED_MODELS["loyalty"] if reg else None,
            )
            versions["loyalty"] = str(info.registered_model_version or info.model_uri)
        if training.loyalty_skipped:
            mlflow.set_tag("crm.loyalty_skipped", training.loyalty_skipped[:500])
    outputs: dict[str, Any] = {"churn_scores": None}
    metrics = dict(training.metrics)
    importance = training.importance
    crosstab = None
    retention: RetentionReport | None = None
    contagion: ContagionReport | None = None
    artifacts = write_plots(training, ctx.workdir / "churn")
    release_freed()  # the fits' leftovers, before everyone's profile is read to score
    if score:
        scored = _score(ctx, profile, values, training.churn, training.loyalty)
        outputs["churn_scores"] = scored.frame
        metrics |= scored.metrics
        artifacts |= scored.artifacts
        contagion = scored.contagion
        importance = scored.churn.importance
        crosstab = scored.lifecycle_by_band
        if scored.valued is not None:
            worth = _retention(ctx, training.churn, scored.churn.parts, scored.valued)
            if worth is not None:
                retention, artifacts["churn_profit"] = worth
                metrics |= {
                    "churn.empc": retention.empc,
                    "churn.empc_share": retention.empc_share,
                    "retention.contacts": retention.contacts,
                    "retention.expected_profit": retention.expected_profit,
                }
    report = ChurnReport(
        metrics=dict(training.metrics),
        features=list(training.churn.feature_names_in_),
        importance=[FeatureImportance(**row) for row in importance.head(15).to_dicts()],
        train_cut=training.train_cut,
        valid_cut=training.valid_cut,
        horizon_days=training.horizon_days,
        loyalty_skipped=training.loyalty_skipped,
        train_cuts=list(training.cuts.train),
        learning_curve=training.learning_curve,
        lifecycle_by_band=crosstab,
        retention=retention,
        contagion=contagion,
        model=training.churn.learner,
    )
    return StageOutput(
        outputs=outputs,
        metrics=metrics,
        params=training.params(),
        report=report,
        artifacts=artifacts,
        model_versions=versions,
    )


def churn_registry_stage(
    ctx: StageContext,
    profile: pl.DataFrame | pl.LazyFrame,
    values: pl.DataFrame | pl.LazyFrame | None = None,
    *,
    churn_uri: str | None = None,
    loyalty_uri: str | None = None,
) -> StageOutput:
    """Churn and loyalty scores from registered models (no training).

    ``churn_uri`` / ``loyalty_uri`` default to the latest registered versions; without a
    registered loyalty model the loyalty columns are null.
    """
    from churn.pyfunc import load_churn_model, load_loyalty_model

    churn_uri = require_registered("churn", churn_uri)
    churn_model = load_registered(churn_uri, load_churn_model)
    loyalty_uri = loyalty_uri or registered_model_uri("loyalty")
    loyalty_model = load_registered(loyalty_uri, load_loyalty_model) if loyalty_uri else None
    scored = _score(ctx, profile, values, churn_model, loyalty_model)
    versions = {"churn": churn_uri} | ({"loyalty": loyalty_uri} if loyalty_uri else {})
    return StageOutput(
        outputs={"churn_scores": scored.frame},
        metrics=scored.metrics,
        params={"churn_model_uri": churn_uri, "loyalty_model_uri": loyalty_uri or ""},
        artifacts=scored.artifacts,
        model_versions=versions,
    )
