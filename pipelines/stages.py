"""The pipeline's stages, declared as data, and the adapters that call each stage package.

Every stage adapter lives here: it takes frames from the catalog, calls its package and hands
back frames, metrics, a report and the models it logged. Training and loading from the registry
are two adapters of the same stage name; `default_stages` picks one.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import polars as pl

from crm_engine.contracts import SCORE_COLUMNS, scores_schema
from crm_engine.scores import conform_scores
from crm_engine.stage_reports import (
    ChurnReport,
    ContagionReport,
    FeatureImportance,
    PopulationReport,
    RetentionReport,
)
from pipelines.runner import SchemaFn, Stage, StageContext, StageError, StageOutput

if TYPE_CHECKING:
    from churn.model import ChurnModel

STAGE_NAMES = ("profile", "segmentation", "valuation", "churn")
T = TypeVar("T")


# --- declared schemas ----------------------------------------------------------------------


def owned_columns(owners: Sequence[str]) -> list[str]:
    """The ``crm.scores/v1`` columns whose owner label is one of ``owners``, in contract order
    (``customer_id`` first, whoever owns it: it is every frame's join key)."""
    names = [c.name for c in SCORE_COLUMNS if c.stage in owners and c.name != "customer_id"]
    return ["customer_id", *names]


def owned_schema(*owners: str) -> SchemaFn:
    """The schema of the frame through which a stage supplies its contract columns."""

    def schema(ctx: StageContext) -> pl.Schema:
        full = scores_schema(ctx.id_dtype)
        return pl.Schema({name: full[name] for name in owned_columns(owners)})

    return schema


def _with_id(declared: pl.Schema) -> SchemaFn:
    """A stage package's declared schema with the run's customer id type."""

    def schema(ctx: StageContext) -> pl.Schema:
        return pl.Schema({**declared, "customer_id": ctx.id_dtype})

    return schema


def _profile_schema(ctx: StageContext) -> pl.Schema:
    import features

    return features.profile_schema(ctx.cfg.features, frozenset(ctx.tables), ctx.id_dtype)


def _scores_schema(ctx: StageContext) -> pl.Schema:
    return scores_schema(ctx.id_dtype)


# --- profile -------------------------------------------------------------------------------


def profile_stage(ctx: StageContext, tables: dict[str, pl.LazyFrame]) -> StageOutput:
    """Point-in-time profile at ``as_of`` and the contract columns the profile owns."""
    import features

    profile = ctx.profile_at(ctx.as_of)
    owned = owned_columns(["features"])
    facts = profile.select(
        "customer_id",
        pl.lit(ctx.as_of).alias("as_of"),
        *features.rfm_facts(),
        *[c for c in owned if c in profile.columns and c != "customer_id"],
    )
    missing = {
        c.name: pl.lit(None, dtype=c.dtype).alias(c.name)
        for c in SCORE_COLUMNS
        if c.name in owned and c.name not in facts.columns  # influence without a calls table
    }
    facts = facts.with_columns(missing.values()).select(owned)
    counts = features.population_counts(tables["customers"], ctx.as_of).collect().row(0, named=True)
    report = PopulationReport(
        n_customers=counts["customers"],
        n_scored=profile.height,
        n_churned_before_as_of=counts["churned_before_as_of"],
        n_not_yet_signed_up=counts["not_yet_signed_up"],
    )
    return StageOutput(
        outputs={"profile": profile, "profile_facts": facts},
        metrics={
            "customers": profile.height,
            "columns": profile.width,
            "customers_input": report.n_customers,
            "churned_before_as_of": report.n_churned_before_as_of,
            "not_yet_signed_up": report.n_not_yet_signed_up,
        },
        params={"tables": ",".join(sorted(tables))},
        report=report,
    )


# --- segmentation --------------------------------------------------------------------------


PreviousModel = Path | Literal[False] | None
"""A previous segmentation model: a file, False for none, None for the last run's if any."""


def _previous_segmenter(
    ctx: StageContext, previous: PreviousModel
) -> tuple[Path | None, str | None]:
    """The previous model's file and the sha256 its run recorded (None: the user named it)."""
    import warnings

    from pipelines.manifest import recorded_sha256
    from segmentation import SegmentationWarning
    from segmentation.store import LEGACY_MODEL_FILE, MODEL_FILE

    if previous is False:
        return None, None
    if previous is not None:
        return Path(previous), None
    if ctx.previous_output is None:
        return None, None
    if not (ctx.previous_output / MODEL_FILE).is_file():
        if (ctx.previous_output / LEGACY_MODEL_FILE).is_file():
            warnings.warn(
                f"{ctx.previous_output / LEGACY_MODEL_FILE} is a pickle from an older version: "
                "not loaded (a pickle runs code), segment ids start afresh",
                SegmentationWarning,
                stacklevel=2,
            )
        return None, None
    recorded = recorded_sha256(ctx.previous_output, MODEL_FILE)
    if recorded is None:
        warnings.warn(
            f"{ctx.previous_output / MODEL_FILE} has no recorded sha256: not loaded, segment "
            "ids start afresh",
            SegmentationWarning,
            stacklevel=2,
        )
        return None, None
    return ctx.previous_output / MODEL_FILE, recorded


def segmentation_stage(
    ctx: StageContext, profile: pl.DataFrame, *, previous: PreviousModel = None
) -> StageOutput:
    """Bands and behavioural segments; ids aligned with the previous run's model when present."""
    from segmentation import segment_customers
    from segmentation.store import MODEL_FILE, load_segmenter, save_segmenter

    previous_path, sha256 = _previous_segmenter(ctx, previous)
    previous_model = load_segmenter(previous_path, sha256) if previous_path is not None else None
    if profile.height == 0:
        raise StageError(f"segmentation: no active customers at as_of={ctx.as_of}")
    result = segment_customers(
        profile, ctx.cfg.segmentation, previous=previous_model, features_cfg=ctx.cfg.features
    )
    save_segmenter(result.model, ctx.workdir / MODEL_FILE)
    versions: dict[str, str] = {}
    if ctx.tracking:
        from crm_engine.tracking import REGISTERED_MODELS
        from segmentation.pyfunc import log_segmentation_model

        reg = REGISTERED_MODELS["segmentation"] if ctx.cfg.mlflow.register_models else None
        info = log_segmentation_model(result, registered_model_name=reg)
        versions["segmentation"] = str(info.registered_model_version or info.model_uri)
    report = dataclasses.replace(
        result.report, previous_model=str(previous_path) if previous_path else None
    )
    metrics: dict[str, Any] = {"k": report.k, "customers": report.n_customers}
    for score in report.scores:
        for key in ("silhouette", "bic", "inertia", "chosen"):
            value = getattr(score, key)
            if value is not None:
                metrics[f"{key}.k{score.k}"] = float(value)
    if report.same_segment_share is not None:
        metrics["same_segment_share"] = report.same_segment_share
    outputs: dict[str, Any] = {
        "segments": result.assignments,
        "segment_profiles": result.profiles,
        "segment_migration": result.migration,
    }
    return StageOutput(
        outputs=outputs,
        metrics=metrics,
        params={
            "algorithm": report.algorithm,
            "k": ctx.cfg.segmentation.k,
            "features": ",".join(report.features),
        },
        report=report,
        model_versions=versions,
    )


def _registered(model: str, uri: str | None = None) -> str:
    """``uri``, or the latest registered version of a pipeline model."""
    from crm_engine.io import DataError
    from crm_engine.tracking import REGISTERED_MODELS, registered_model_uri

    found = uri or registered_model_uri(model)
    if found is None:
        raise DataError(
            f"no registered model {REGISTERED_MODELS[model]!r} in the tracking store: train it "
            "first (crm-engine run, or crm-engine churn train, with mlflow.register_models = "
            "true) or pass a model URI"
        )
    return found


def _load(uri: str, loader: Callable[[str], T]) -> T:
    """A registered model, or a one-line `DataError` naming the URI and the store searched."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from crm_engine.io import DataError

    try:
        return loader(uri)
    except DataError:
        raise
    except (MlflowException, OSError, ValueError, KeyError) as e:
        raise DataError(
            f"model {uri} could not be loaded from the tracking store "
            f"{mlflow.get_tracking_uri()} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "check the URI, or point at another store with --tracking-uri or [mlflow] "
            "tracking_uri"
        ) from None


def segmentation_registry_stage(ctx: StageContext, profile: pl.DataFrame) -> StageOutput:
    """Assign segments with the latest registered segmentation model (no refit)."""

    from segmentation.bands import profile_age_band, spend_cut_points, spend_level_expr
    from segmentation.profiles import segment_profiles
    from segmentation.pyfunc import load_segmentation_model, model_input_frame

    uri = _registered("segmentation")
    segmenter = _load(uri, load_segmentation_model)
    assigned = segmenter.assign(model_input_frame(segmenter, profile))
    cuts = spend_cut_points(profile, ctx.cfg.segmentation.spend_cut_points)
    assignments = profile.select(
        "customer_id",
        spend_level_expr(cuts),
        profile_age_band(profile.columns),
        pl.Series("segment_id", assigned["segment_id"].to_numpy(), dtype=pl.Int64),
        pl.Series("segment_name", assigned["segment_name"].astype(str).tolist(), dtype=pl.String),
    )
    profiles = segment_profiles(assignments, profile, segmenter.features_, None)
    return StageOutput(
        outputs={"segments": assignments, "segment_profiles": profiles, "segment_migration": None},
        metrics={"customers": profile.height},
        params={"model_uri": uri},
        model_versions={"segmentation": uri},
    )


# --- valuation -----------------------------------------------------------------------------


def valuation_stage(ctx: StageContext, tables: dict[str, pl.LazyFrame]) -> StageOutput:
    """Holdout (model selection with ``auto``), fit at as_of, value every customer.

    Logs the CLV pyfunc model (registered as ``crm-clv`` when ``mlflow.register_models``)
    inside the runner's nested run when ``ctx.tracking``.
    """
    from valuation import run_valuation
    from valuation.holdout import plot_holdout

    cfg = ctx.cfg.valuation
    sample = ctx.bounded_sample(cfg.max_holdout_customers)
    run = run_valuation(
        ctx.profile_at,
        tables["transactions"],
        ctx.as_of,
        cfg,
        sample,
        tables["customers"],
        ctx.data_start(),
    )
    artifacts: dict[str, Path] = {}
    if run.holdout is not None and any(m is not None for m in run.holdout.metrics.values()):
        artifacts["valuation_holdout.png"] = plot_holdout(
            run.holdout, ctx.workdir / "valuation" / "valuation_holdout.png"
        )
    versions: dict[str, str] = {}
    if ctx.tracking:
        from crm_engine.tracking import REGISTERED_MODELS
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
    metrics: dict[str, Any] = {
        "valuation.log_likelihood": run.report.log_likelihood,
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
    if run.models.retention is not None:
        params["valuation.sbg.alpha"] = run.models.retention.alpha
        params["valuation.sbg.beta"] = run.models.retention.beta
        metrics["valuation.sbg.retention_12m"] = run.report.retention["retention_12m"]  # type: ignore[index]
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


def valuation_registry_stage(ctx: StageContext, profile: pl.DataFrame) -> StageOutput:
    """Values from the latest registered CLV model (no refit, no holdout)."""

    from valuation import value_customers
    from valuation.pyfunc import load_clv_model

    uri = _registered("clv")
    values, report = value_customers(profile, ctx.cfg.valuation, model=_load(uri, load_clv_model))
    return StageOutput(
        outputs={"values": values},
        params={"model_uri": uri},
        report=dataclasses.replace(report, model_uri=uri),
        model_versions={"clv": uri},
    )


# --- churn and loyalty ---------------------------------------------------------------------


def _scoring_frame(ctx: StageContext, profile: pl.DataFrame) -> pl.DataFrame:
    from churn.frames import with_extras

    return with_extras(profile.lazy(), ctx.tables, ctx.cfg.churn.extra_features).collect()


def _clv(values: pl.DataFrame | None) -> pl.DataFrame | None:
    """What churn scoring takes from valuation: CLV (value at risk) and the lifecycle stage
    (dormant customers are lost, see ``churn.score_churn``)."""
    if values is None:
        return None
    return values.select("customer_id", "clv", "lifecycle_stage")


def _retention(
    ctx: StageContext, model: ChurnModel, scored: pl.DataFrame, values: pl.DataFrame
) -> tuple[RetentionReport, Path] | None:
    """What acting on the scores is worth: EMPC out of time and this run's contact set.

    The validation cut's report half has known outcomes but no CLV of its own: every customer
    there is valued at the mean CLV of this run's customers who could be contacted. None when
    nobody could be (everyone lost, or no CLV).
    """
    from churn import LOST_STAGE
    from churn.plots import plot_profit_curve
    from churn.profit import empc, planned_curve, profit_curve

    terms = ctx.cfg.retention
    gain = scored.get_column("retention_profit").drop_nulls().to_numpy()
    worth = values.filter(pl.col("lifecycle_stage").fill_null("") != LOST_STAGE)
    mean_clv = worth.get_column("clv").mean()
    if gain.size == 0 or mean_clv is None:
        return None
    value = float(mean_clv)  # type: ignore[arg-type]
    y, p = model.report_y_, model.report_p_
    checked = empc(y, p, value, terms)
    path = plot_profit_curve(
        profit_curve(y, p, value, terms),
        planned_curve(gain),
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
        contacts=int((gain > 0).sum()),
        candidates=int(gain.size),
        expected_profit=float(gain[gain > 0].sum()),
    )
    return report, path


def _contagion(
    ctx: StageContext, scores: pl.DataFrame, profile: pl.DataFrame, values: pl.DataFrame
) -> tuple[pl.DataFrame, ContagionReport | None, dict[str, Path]]:
    """``scores`` with the network columns (``[contagion]``, :mod:`churn.contagion`), what
    the estimate found and its picture; ``scores`` unchanged and None when disabled, without
    a call graph or when the history holds nothing to estimate from (a warning says so)."""
    from churn.contagion import estimate_contagion, with_network_value
    from churn.plots import plot_network_value
    from features.influence import undirected_edges

    cfg = ctx.cfg
    if not cfg.contagion.enabled or "calls" not in ctx.tables:
        return scores, None, {}
    try:
        found = estimate_contagion(
            ctx.tables,
            ctx.as_of,
            months=cfg.contagion.months,
            contagion_days=cfg.features.contagion_days,
            sample=ctx.bounded_sample(cfg.contagion.max_customers),
        )
    except ValueError as e:
        import warnings

        warnings.warn(f"no network value: {e}", stacklevel=2)
        return scores, None, {}
    edges = undirected_edges(ctx.tables["calls"], ctx.as_of)
    out = with_network_value(scores, values, edges, found, horizon_days=cfg.churn.horizon_days)
    contacts = profile.get_column("n_contacts").filter(profile.get_column("n_contacts") > 0)
    median = int(contacts.median() or 1) if contacts.len() else 1  # type: ignore[arg-type]
    report = ContagionReport(
        **found.to_dict(),
        median_contacts=median,
        odds_factor=found.odds_factor(median),
        value_at_risk_network=float(out.get_column("value_at_risk_network").sum()),
        value_at_risk=float(out.get_column("value_at_risk").fill_null(0.0).sum()),
        customers_with_network_value=int((out.get_column("network_value") > 0).sum()),
    )
    picture = plot_network_value(out, ctx.workdir / "churn" / "churn_network.png")
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


def churn_stage(
    ctx: StageContext,
    tables: dict[str, pl.LazyFrame],
    profile: pl.DataFrame,
    values: pl.DataFrame | None = None,
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
    """
    from churn import add_loyalty, score_churn
    from churn.training import train_models, write_plots

    cfg = ctx.cfg
    sample = ctx.bounded_sample(cfg.churn.max_training_customers)
    training = train_models(
        tables, ctx.as_of, cfg, profile_at=ctx.profile_at, sample=sample, start=ctx.data_start()
    )
    ctx.release_earlier_profiles()  # the training cuts' profiles: not needed to score
    versions: dict[str, str] = {}
    if ctx.tracking:
        import mlflow

        from churn.pyfunc import log_churn_model, log_loyalty_model
        from crm_engine.tracking import REGISTERED_MODELS

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
    if score:
        from churn import lifecycle_by_band
        from valuation import STAGES

        scoring = _scoring_frame(ctx, profile)
        scored = score_churn(scoring, training.churn, cfg.churn, _clv(values), cfg.retention)
        frame = scored.frame
        metrics["churn.n_explained"] = scored.n_explained
        importance = scored.importance
        if values is not None:
            frame, contagion, pictures = _contagion(ctx, frame, profile, values)
            artifacts |= pictures
            metrics |= _contagion_metrics(contagion)
            metrics["churn.n_lost"] = scored.n_lost
            crosstab = lifecycle_by_band(scored.frame, values, STAGES)
            worth = _retention(ctx, training.churn, scored.frame, values)
            if worth is not None:
                retention, artifacts["churn_profit"] = worth
                metrics |= {
                    "churn.empc": retention.empc,
                    "churn.empc_share": retention.empc_share,
                    "retention.contacts": retention.contacts,
                    "retention.expected_profit": retention.expected_profit,
                }
        outputs["churn_scores"] = add_loyalty(frame, scoring, training.loyalty)
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
    profile: pl.DataFrame,
    values: pl.DataFrame | None = None,
    *,
    churn_uri: str | None = None,
    loyalty_uri: str | None = None,
) -> StageOutput:
    """Churn and loyalty scores from registered models (no training).

    ``churn_uri`` / ``loyalty_uri`` default to the latest registered versions; without a
    registered loyalty model the loyalty columns are null.
    """
    from churn import add_loyalty, score_churn
    from churn.pyfunc import load_churn_model, load_loyalty_model
    from crm_engine.tracking import registered_model_uri

    churn_uri = _registered("churn", churn_uri)
    churn_model = _load(churn_uri, load_churn_model)
    loyalty_uri = loyalty_uri or registered_model_uri("loyalty")
    loyalty_model = _load(loyalty_uri, load_loyalty_model) if loyalty_uri else None
    scoring = _scoring_frame(ctx, profile)
    scored = score_churn(scoring, churn_model, ctx.cfg.churn, _clv(values), ctx.cfg.retention)
    frame = scored.frame
    metrics: dict[str, float] = {"churn.n_explained": scored.n_explained}
    artifacts: dict[str, Path] = {}
    if values is not None:
        frame, contagion, artifacts = _contagion(ctx, frame, profile, values)
        metrics |= _contagion_metrics(contagion)
        metrics["churn.n_lost"] = scored.n_lost
    out = add_loyalty(frame, scoring, loyalty_model)
    versions = {"churn": churn_uri} | ({"loyalty": loyalty_uri} if loyalty_uri else {})
    return StageOutput(
        outputs={"churn_scores": out},
        metrics=metrics,
        params={"churn_model_uri": churn_uri, "loyalty_model_uri": loyalty_uri or ""},
        artifacts=artifacts,
        model_versions=versions,
    )


# --- assemble ------------------------------------------------------------------------------


def assemble_stage(
    ctx: StageContext, *, sources: dict[str, tuple[str, ...]], **frames: pl.DataFrame | None
) -> StageOutput:
    """Join every stage's contract columns into one ``crm.scores/v1`` frame: joins only.

    ``sources`` maps a catalog frame to the owner labels whose columns it supplies; each
    contract column is taken from its one owner and nothing is computed here. Columns of a
    stage that did not run become typed nulls.
    """
    base_name = next(iter(sources))
    scores = frames[base_name]
    if scores is None:
        raise StageError(f"assemble: the {base_name} frame is missing")
    scores = scores.select(owned_columns(sources[base_name]))
    for name, owners in list(sources.items())[1:]:
        frame = frames.get(name)
        if frame is not None:
            scores = scores.join(frame.select(owned_columns(owners)), on="customer_id", how="left")
    scores = conform_scores(scores)
    outputs: dict[str, Any] = {"scores": scores, "segment_summary": None}
    segment_profiles = frames.get("segment_profiles")
    if segment_profiles is not None:
        outputs["segment_summary"] = _enrich_segment_profiles(segment_profiles, scores)
    return StageOutput(outputs=outputs, metrics={"rows": scores.height})


def _enrich_segment_profiles(profiles: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    """Per-segment mean CLV and churn, and value at risk, of the stages that ran."""
    ran = [
        c
        for c in ("clv", "churn_probability", "value_at_risk")
        if scores[c].null_count() < scores.height
    ]
    aggs = [
        (pl.col(c).sum() if c == "value_at_risk" else pl.col(c).mean()).alias(
            c if c == "value_at_risk" else f"{c}_mean"
        )
        for c in ran
    ]
    if not aggs:
        return profiles
    extra = scores.group_by("segment_id").agg(aggs)
    keep = [c for c in profiles.columns if c == "segment_id" or c not in extra.columns]
    order = [*profiles.columns, *[c for c in extra.columns if c not in profiles.columns]]
    return profiles.select(keep).join(extra, on="segment_id", how="left").select(order)


# --- the stage list ------------------------------------------------------------------------


def default_stages(
    selected: Sequence[str] | None = None,
    registry: bool = False,
    *,
    assemble: bool = True,
    previous_segmenter: PreviousModel = None,
    churn_score: bool = True,
    churn_uri: str | None = None,
    loyalty_uri: str | None = None,
    backtest: bool | None = None,
    drift: bool | None = None,
) -> list[Stage]:
    """The stage list in execution order; ``selected`` keeps a subset (profile always runs).

    Parameters
    ----------
    selected
        Stage names to run (default all of :data:`STAGE_NAMES`).
    registry
        The model stages load the latest registered models instead of fitting.
    assemble
        End with the assemble stage (the run output's ``scores``); the single-stage commands
        write a stage's own output instead.
    previous_segmenter
        The segmentation model to align segment ids with (see :data:`PreviousModel`).
    churn_score
        False: the churn stage trains only (``crm-engine churn train``).
    churn_uri, loyalty_uri
        Registered model URIs for the churn registry stage (default: latest versions).
    backtest
        End with the backtest of the last committed run before as_of
        (:mod:`pipelines.backtest`); default: with ``assemble`` (a run output).
    drift
        End with the run's distribution fingerprint and its drift since the last committed run
        (:mod:`pipelines.drift`); default: with ``assemble``.

    Raises
    ------
    ValueError
        An unknown stage name.
    """
    from segmentation.stage import ASSIGNMENT_SCHEMA
    from valuation import VALUES_SCHEMA

    wanted = set(selected or STAGE_NAMES) | {"profile"}
    unknown = wanted - set(STAGE_NAMES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; allowed: {', '.join(STAGE_NAMES)}")
    stages = [
        Stage(
            "profile",
            profile_stage,
            ("tables",),
            ("profile", "profile_facts"),
            schemas={"profile": _profile_schema, "profile_facts": owned_schema("features")},
            owns=("features",),
        )
    ]
    sources = {"profile_facts": ("features",)}
    if "segmentation" in wanted:
        fn = (
            segmentation_registry_stage
            if registry
            else functools.partial(segmentation_stage, previous=previous_segmenter)
        )
        stages.append(
            Stage(
                "segmentation",
                fn,
                ("profile",),
                ("segments", "segment_profiles", "segment_migration"),
                schemas={"segments": _with_id(ASSIGNMENT_SCHEMA)},
                owns=("segmentation",),
            )
        )
        sources["segments"] = ("segmentation",)
    if "valuation" in wanted:
        stages.append(
            Stage(
                "valuation",
                valuation_registry_stage if registry else valuation_stage,
                ("profile",) if registry else ("tables",),
                ("values",),
                schemas={"values": _with_id(VALUES_SCHEMA)},
                owns=("valuation",),
            )
        )
        sources["values"] = ("valuation",)
    if "churn" in wanted:
        fn = (
            functools.partial(churn_registry_stage, churn_uri=churn_uri, loyalty_uri=loyalty_uri)
            if registry
            else functools.partial(churn_stage, score=churn_score)
        )
        inputs = ("profile",) if registry else ("tables", "profile")
        stages.append(
            Stage(
                "churn",
                fn,
                inputs,
                ("churn_scores",),
                optional_inputs=("values",),
                schemas={"churn_scores": owned_schema("churn", "loyalty")} if churn_score else {},
                owns=("churn", "loyalty"),
            )
        )
        sources["churn_scores"] = ("churn", "loyalty")
    if assemble:
        stages.append(
            Stage(
                "assemble",
                functools.partial(assemble_stage, sources=sources),
                ("profile_facts",),
                ("scores", "segment_summary"),
                optional_inputs=("segments", "values", "churn_scores", "segment_profiles"),
                schemas={"scores": _scores_schema},
            )
        )
    if backtest is None:
        backtest = assemble
    if backtest:
        from pipelines.backtest import backtest_stage

        stages.append(Stage("backtest", backtest_stage, ("tables",), ()))
    if drift is None:
        drift = assemble
    if drift:
        from pipelines.drift import drift_stage

        stages.append(Stage("drift", drift_stage, ("tables", "profile", "scores"), ()))
    return stages
