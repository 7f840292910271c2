"""The pipeline's stages, declared as data, and the adapters that call each stage package."""

from __future__ import annotations

from typing import Any

import polars as pl

from pipelines.runner import Stage, StageContext, StageError, StageOutput

STAGE_NAMES = ("profile", "segmentation", "valuation", "churn")


def profile_stage(ctx: StageContext, tables: dict[str, pl.LazyFrame]) -> StageOutput:
    """Point-in-time profiles at ``as_of``, collected once with the streaming engine."""
    profile = ctx.profile_at(ctx.as_of)
    return StageOutput(
        outputs={"profile": profile},
        metrics={"customers": profile.height, "columns": profile.width},
        params={"tables": ",".join(sorted(tables))},
    )


def assemble_stage(
    ctx: StageContext,
    profile: pl.DataFrame,
    segments: pl.DataFrame | None = None,
    values: pl.DataFrame | None = None,
    churn_scores: pl.DataFrame | None = None,
    segment_profiles: pl.DataFrame | None = None,
) -> StageOutput:
    """Join every stage's per-customer columns into one frame in contract vocabulary."""
    base = profile.select(
        "customer_id",
        pl.lit(ctx.as_of).alias("as_of"),
        *[
            c
            for c in (
                "age_band",
                "occupation",
                "region",
                "area_type",
                "plan_type",
                "tenure_days",
                "frequency",
                "influence_score",
            )
            if c in profile.columns
        ],
    )
    if {"T", "recency", "has_purchase"} <= set(profile.columns):
        base = base.with_columns(
            pl.when(profile["has_purchase"])
            .then((profile["T"] - profile["recency"] + 1).round(0).cast(pl.Int64))
            .otherwise(None)
            .alias("recency_days"),
            profile["monetary_value"].alias("monetary_avg"),
        )
    scores = base
    for frame in (segments, values, churn_scores):
        if frame is None:
            continue
        new_cols = [c for c in frame.columns if c == "customer_id" or c not in scores.columns]
        scores = scores.join(frame.select(new_cols), on="customer_id", how="left")
    outputs: dict[str, Any] = {"scores": scores}
    if segment_profiles is not None:
        outputs["segment_profiles"] = _enrich_segment_profiles(segment_profiles, scores)
    return StageOutput(outputs=outputs, metrics={"rows": scores.height})


def _enrich_segment_profiles(profiles: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    """Fill per-segment mean CLV and churn, and value at risk, once those stages have run."""
    if "segment_id" not in scores.columns:
        return profiles
    aggs = []
    for col, name in (("clv", "clv_mean"), ("churn_probability", "churn_probability_mean")):
        if col in scores.columns:
            aggs.append(pl.col(col).mean().alias(name))
    if "value_at_risk" in scores.columns:
        aggs.append(pl.col("value_at_risk").sum().alias("value_at_risk"))
    if not aggs:
        return profiles
    extra = scores.group_by("segment_id").agg(aggs)
    keep = [c for c in profiles.columns if c == "segment_id" or c not in extra.columns]
    order = [c for c in profiles.columns] + [c for c in extra.columns if c not in profiles.columns]
    return profiles.select(keep).join(extra, on="segment_id", how="left").select(order)


SEGMENTATION_MODEL_NAME = "crm-segmentation"
SEGMENTATION_MODEL_FILE = "segmentation_model.pkl"


def segmentation_stage(ctx: StageContext, profile: pl.DataFrame) -> StageOutput:
    """Bands and behavioural segments; ids aligned with the previous run's model when present."""
    from pipelines.segment_job import load_segmenter, save_segmenter
    from segmentation import segment_customers

    previous = None
    if ctx.previous_output is not None:
        path = ctx.previous_output / SEGMENTATION_MODEL_FILE
        if path.is_file():
            previous = load_segmenter(path)
    result = segment_customers(profile, ctx.cfg.segmentation, previous=previous)
    save_segmenter(result.model, ctx.workdir / SEGMENTATION_MODEL_FILE)
    versions: dict[str, str] = {}
    if ctx.tracking:
        from segmentation.pyfunc import log_segmentation_model

        reg = SEGMENTATION_MODEL_NAME if ctx.cfg.mlflow.register_models else None
        info = log_segmentation_model(result, registered_model_name=reg)
        versions["segmentation"] = str(info.registered_model_version or info.model_uri)
    report = result.report
    metrics: dict[str, Any] = {"k": report["k"], "customers": report["n_customers"]}
    for row in report.get("scores", []):
        for key, value in row.items():
            if key != "k" and isinstance(value, int | float):
                metrics[f"{key}.k{row.get('k')}"] = value
    if "same_segment_share" in report:
        metrics["same_segment_share"] = report["same_segment_share"]
    outputs: dict[str, Any] = {"segments": result.assignments, "segment_profiles": result.profiles}
    if result.migration is not None:
        outputs["segment_migration"] = result.migration
        report = {**report, "migration": result.migration.to_dicts()}
    return StageOutput(
        outputs=outputs,
        metrics=metrics,
        params={
            "algorithm": report["algorithm"],
            "k": ctx.cfg.segmentation.k,
            "features": ",".join(report["features"]),
        },
        report=report,
        model_versions=versions,
    )


def _latest(name: str) -> str:
    from pipelines.churn_job import latest_model_uri

    uri = latest_model_uri(name)
    if uri is None:
        raise StageError(
            f"no registered model {name!r} in the tracking store: run the pipeline once "
            "(with mlflow.register_models = true) before --score-only --registry"
        )
    return uri


def segmentation_registry_stage(ctx: StageContext, profile: pl.DataFrame) -> StageOutput:
    """Assign segments with the latest registered segmentation model (no refit)."""
    import mlflow

    from segmentation.bands import spend_cut_points, spend_level_expr
    from segmentation.profiles import segment_profiles
    from segmentation.pyfunc import model_input_frame

    uri = _latest(SEGMENTATION_MODEL_NAME)
    segmenter = mlflow.pyfunc.load_model(uri).unwrap_python_model().segmenter
    assigned = segmenter.assign(model_input_frame(segmenter, profile))
    cuts = spend_cut_points(profile, ctx.cfg.segmentation.spend_cut_points)
    assignments = profile.select(
        "customer_id",
        spend_level_expr(cuts),
        pl.col("age_band")
        if "age_band" in profile.columns
        else pl.lit("unknown").alias("age_band"),
        pl.Series("segment_id", assigned["segment_id"].to_numpy(), dtype=pl.Int64),
        pl.Series("segment_name", assigned["segment_name"].astype(str).tolist(), dtype=pl.String),
    )
    profiles = segment_profiles(assignments, profile, segmenter.features_, None)
    return StageOutput(
        outputs={"segments": assignments, "segment_profiles": profiles},
        metrics={"customers": profile.height},
        params={"model_uri": uri},
        model_versions={"segmentation": uri},
    )


def valuation_registry_stage(ctx: StageContext, profile: pl.DataFrame) -> StageOutput:
    """Values from the latest registered CLV model (no refit, no holdout)."""
    import mlflow

    from pipelines.value_job import CLV_MODEL_NAME
    from valuation.stage import ValuationModels, value_customers

    uri = _latest(CLV_MODEL_NAME)
    inner = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    values, report = value_customers(
        profile, ctx.cfg.valuation, model=ValuationModels(inner.purchase, inner.spend)
    )
    return StageOutput(
        outputs={"values": values},
        params={"model_uri": uri},
        report={**report, "model_uri": uri},
        model_versions={"clv": uri},
    )


def churn_registry_stage(
    ctx: StageContext,
    tables: dict[str, pl.LazyFrame],
    profile: pl.DataFrame,
    values: pl.DataFrame | None = None,
) -> StageOutput:
    """Churn and loyalty scores from the latest registered models (no training)."""
    from churn import add_loyalty, score_churn
    from churn.pyfunc import load_churn_model, load_loyalty_model
    from pipelines.churn_job import (
        CHURN_MODEL_NAME,
        LOYALTY_MODEL_NAME,
        _with_extras,
        latest_model_uri,
    )

    churn_uri = _latest(CHURN_MODEL_NAME)
    churn_model = load_churn_model(churn_uri)
    loyalty_uri = latest_model_uri(LOYALTY_MODEL_NAME)
    loyalty_model = load_loyalty_model(loyalty_uri) if loyalty_uri else None
    scoring = _with_extras(profile.lazy(), tables, ctx.cfg.churn.extra_features).collect()
    clv = values.select("customer_id", "clv") if values is not None else None
    scored = score_churn(scoring, churn_model, ctx.cfg.churn, clv)
    out = add_loyalty(scored.frame, scoring, loyalty_model)
    versions = {"churn": churn_uri} | ({"loyalty": loyalty_uri} if loyalty_uri else {})
    return StageOutput(
        outputs={"churn_scores": out},
        metrics={"n_explained": scored.n_explained},
        model_versions=versions,
    )


def default_stages(selected: list[str] | None = None, registry: bool = False) -> list[Stage]:
    """The stage list in execution order; ``selected`` keeps a subset (profile always runs).

    With ``registry`` the model stages load the latest registered models instead of fitting.
    """
    from pipelines.churn_job import churn_stage
    from pipelines.value_job import valuation_stage

    wanted = set(selected or STAGE_NAMES) | {"profile"}
    unknown = wanted - set(STAGE_NAMES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; allowed: {', '.join(STAGE_NAMES)}")
    stages = [Stage("profile", profile_stage, ("tables",), ("profile",))]
    if "segmentation" in wanted:
        fn = segmentation_registry_stage if registry else segmentation_stage
        stages.append(Stage("segmentation", fn, ("profile",), ("segments", "segment_profiles")))
    if "valuation" in wanted:
        if registry:
            stages.append(Stage("valuation", valuation_registry_stage, ("profile",), ("values",)))
        else:
            stages.append(Stage("valuation", valuation_stage, ("tables", "profile"), ("values",)))
    if "churn" in wanted:
        fn = churn_registry_stage if registry else churn_stage
        stages.append(
            Stage(
                "churn", fn, ("tables", "profile"), ("churn_scores",), optional_inputs=("values",)
            )
        )
    stages.append(
        Stage(
            "assemble",
            assemble_stage,
            ("profile",),
            ("scores",),
            optional_inputs=("segments", "values", "churn_scores", "segment_profiles"),
        )
    )
    return stages
