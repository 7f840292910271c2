"""The pipeline's stages, declared as data, and the adapters that call each stage package."""

from __future__ import annotations

from typing import Any

import polars as pl

from pipelines.runner import Stage, StageContext, StageOutput

STAGE_NAMES = ("profile", "segmentation", "valuation", "churn")


def profile_stage(ctx: StageContext, tables: dict[str, pl.LazyFrame]) -> StageOutput:
    """Point-in-time profiles at ``as_of``, collected once with the streaming engine."""
    import features

    profile = features.build_profile(tables, ctx.as_of, ctx.cfg.features).collect(
        engine="streaming"
    )
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
        *[c for c in ("age_band", "occupation", "region", "area_type", "plan_type", "tenure_days",
                      "frequency", "influence_score") if c in profile.columns],
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
    if {"churn_probability", "clv"} <= set(scores.columns):
        scores = scores.with_columns(
            (pl.col("churn_probability") * pl.col("clv")).alias("value_at_risk")
        )
    outputs: dict[str, Any] = {"scores": scores}
    if segment_profiles is not None:
        outputs["segment_profiles"] = _enrich_segment_profiles(segment_profiles, scores)
    return StageOutput(outputs=outputs, metrics={"rows": scores.height})


def _enrich_segment_profiles(profiles: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    """Add mean CLV, churn and value at risk per segment when those stages ran."""
    aggs = []
    for col, name in (("clv", "mean_clv"), ("churn_probability", "mean_churn_probability"),
                      ("value_at_risk", "value_at_risk")):
        if col in scores.columns and name not in profiles.columns:
            agg = pl.col(col).sum() if name == "value_at_risk" else pl.col(col).mean()
            aggs.append(agg.alias(name))
    if not aggs or "segment_id" not in scores.columns:
        return profiles
    extra = scores.group_by("segment_id").agg(aggs)
    return profiles.join(extra, on="segment_id", how="left")


def default_stages(selected: list[str] | None = None, registry: bool = False) -> list[Stage]:
    """The stage list in execution order; ``selected`` keeps a subset (profile always runs)."""
    wanted = set(selected or STAGE_NAMES) | {"profile"}
    unknown = wanted - set(STAGE_NAMES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; allowed: {', '.join(STAGE_NAMES)}")
    stages = [Stage("profile", profile_stage, ("tables",), ("profile",))]
    stages.append(
        Stage("assemble", assemble_stage, ("profile",), ("scores",),
              optional_inputs=("segments", "values", "churn_scores", "segment_profiles"))
    )
    return stages
