"""The pipeline's stages, declared as data: names, inputs, outputs and declared schemas.

Each stage's adapter lives in its package (`features.stage`, `segmentation.stage`,
`valuation.stage`, `churn.stage`, `pipelines.assemble`): it takes frames from the catalog, calls
its package and hands back frames, metrics, a report and the models it logged. Training and
loading from the registry are two adapters of the same stage name; `default_stages` picks one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl

from crm_engine.contracts import owned_columns, scores_schema
from pipelines.runner import SchemaFn, Stage, StageContext

if TYPE_CHECKING:
    from segmentation.stage import PreviousModel

__all__ = ["STAGE_NAMES", "default_stages", "owned_columns", "owned_schema"]

STAGE_NAMES = ("profile", "segmentation", "valuation", "churn")


# --- declared schemas ----------------------------------------------------------------------


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
        End with the backtest of the earlier committed runs before as_of (at most
        ``monitoring.backtest_max_runs``, :mod:`pipelines.backtest`); default: with
        ``assemble`` (a run output).
    drift
        End with the run's distribution fingerprint and its drift since the last committed run
        (:mod:`pipelines.drift`); default: with ``assemble``.

    Raises
    ------
    ValueError
        An unknown stage name.
    """
    from features.stage import profile_stage

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
        from segmentation.stage import (
            ASSIGNMENT_SCHEMA,
            segmentation_registry_stage,
            segmentation_stage,
        )

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
        from valuation.stage import VALUES_SCHEMA, valuation_registry_stage, valuation_stage

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
        from churn.stage import churn_registry_stage, churn_stage

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
        from pipelines.assemble import assemble_stage

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
