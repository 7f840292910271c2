"""The pipeline's stages, declared as data: names, inputs, outputs and declared schemas.

Each stage's adapter lives in its package (`features.stage`, `segmentation.stage`,
`valuation.stage`, `churn.stage`, `pipelines.assemble`): it takes frames from the catalog, calls
its package and hands back frames, metrics, a report and the models it logged. Training and
loading from the registry are two adapters of the same stage name. Every command runs one named
pipeline of :data:`PIPELINES` (``pipeline("run")``, ``pipeline("churn-score", options=...)``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from crm_engine.contracts import owned_columns, scores_schema
from pipelines.runner import SchemaFn, Stage, StageContext, StageFn

if TYPE_CHECKING:
    from segmentation.stage import PreviousModel

__all__ = [
    "PIPELINES",
    "STAGE_NAMES",
    "StageOptions",
    "owned_columns",
    "owned_schema",
    "pipeline",
]

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


# --- the stages, each built from the command's options ---------------------------------------


@dataclass(frozen=True)
class StageOptions:
    """What a command passes to the stages of its pipeline (a stage reads only its own)."""

    previous_segmenter: PreviousModel = None
    """The segmentation model to align segment ids with (see ``segmentation.stage``)."""
    churn_uri: str | None = None
    """Registered churn model URI for the registry churn stage (default: latest version)."""
    loyalty_uri: str | None = None
    """Registered loyalty model URI for the registry churn stage (default: latest version)."""


StageBuilder = Callable[[StageOptions], Stage]

ASSEMBLE_SOURCES: dict[str, tuple[str, ...]] = {
    "profile_facts": ("features",),
    "segments": ("segmentation",),
    "values": ("valuation",),
    "churn_scores": ("churn", "loyalty"),
}
"""The catalog frame through which each stage supplies its contract columns, and their owner
labels, in join order (a frame whose stage did not run is skipped: its columns are typed nulls)."""


def _profile(options: StageOptions) -> Stage:
    from features.stage import profile_stage

    return Stage(
        "profile",
        profile_stage,
        ("tables",),
        ("profile", "profile_facts"),
        schemas={"profile": _profile_schema, "profile_facts": owned_schema("features")},
        owns=("features",),
    )


def _segmentation_with(fn: StageFn) -> Stage:
    from segmentation.stage import ASSIGNMENT_SCHEMA

    return Stage(
        "segmentation",
        fn,
        ("profile",),
        ("segments", "segment_profiles", "segment_migration"),
        schemas={"segments": _with_id(ASSIGNMENT_SCHEMA)},
        owns=("segmentation",),
    )


def _segmentation(options: StageOptions) -> Stage:
    """Fit the segments (ids aligned with ``options.previous_segmenter``)."""
    from segmentation.stage import segmentation_stage

    return _segmentation_with(
        functools.partial(segmentation_stage, previous=options.previous_segmenter)
    )


def _segmentation_registry(options: StageOptions) -> Stage:
    """Assign segments with the registered model."""
    from segmentation.stage import segmentation_registry_stage

    return _segmentation_with(segmentation_registry_stage)


def _valuation_with(fn: StageFn, inputs: tuple[str, ...]) -> Stage:
    from valuation.stage import VALUES_SCHEMA

    return Stage(
        "valuation",
        fn,
        inputs,
        ("values",),
        schemas={"values": _with_id(VALUES_SCHEMA)},
        owns=("valuation",),
    )


def _valuation(options: StageOptions) -> Stage:
    """Fit the value models on the tables and value everyone."""
    from valuation.run import valuation_stage

    return _valuation_with(valuation_stage, ("tables", "profile"))


def _valuation_registry(options: StageOptions) -> Stage:
    """Value everyone with the registered models."""
    from valuation.run import valuation_registry_stage

    return _valuation_with(valuation_registry_stage, ("profile",))


def _churn_with(fn: StageFn, inputs: tuple[str, ...], scores: bool = True) -> Stage:
    return Stage(
        "churn",
        fn,
        inputs,
        ("churn_scores",),
        optional_inputs=("values",),
        schemas={"churn_scores": owned_schema("churn", "loyalty")} if scores else {},
        owns=("churn", "loyalty"),
    )


def _churn(options: StageOptions) -> Stage:
    """Train the churn and loyalty models, then score everyone."""
    from churn.stage import churn_stage

    return _churn_with(churn_stage, ("tables", "profile"))


def _churn_train(options: StageOptions) -> Stage:
    """Train (and register) the churn and loyalty models; no scores."""
    from churn.stage import churn_stage

    return _churn_with(functools.partial(churn_stage, score=False), ("tables", "profile"), False)


def _churn_registry(options: StageOptions) -> Stage:
    """Score everyone with the registered churn and loyalty models."""
    from churn.stage import churn_registry_stage

    fn = functools.partial(
        churn_registry_stage, churn_uri=options.churn_uri, loyalty_uri=options.loyalty_uri
    )
    return _churn_with(fn, ("profile",))


def _assemble(options: StageOptions) -> Stage:
    """One ``crm.scores/v1`` frame from every model stage's contract columns."""
    from pipelines.assemble import assemble_stage

    return Stage(
        "assemble",
        functools.partial(assemble_stage, sources=ASSEMBLE_SOURCES),
        ("profile_facts",),
        ("scores", "segment_summary"),
        optional_inputs=("segments", "values", "churn_scores", "segment_profiles"),
        schemas={"scores": _scores_schema},
    )


def _backtest(options: StageOptions) -> Stage:
    """Check the last committed run's forecasts against what happened since."""
    from pipelines.backtest import backtest_stage

    return Stage("backtest", backtest_stage, ("tables",), ())


def _drift(options: StageOptions) -> Stage:
    """The run's distribution fingerprint and its drift since the last committed run."""
    from pipelines.drift import drift_stage

    return Stage("drift", drift_stage, ("tables", "profile", "scores"), ())


# --- the named pipelines -------------------------------------------------------------------


PIPELINES: dict[str, tuple[StageBuilder, ...]] = {
    "run": (_profile, _segmentation, _valuation, _churn, _assemble, _backtest, _drift),
    "score-only": (
        _profile,
        _segmentation_registry,
        _valuation_registry,
        _churn_registry,
        _assemble,
        _backtest,
        _drift,
    ),
    "features": (_profile,),
    "segment": (_profile, _segmentation),
    "value": (_profile, _valuation),
    "churn-train": (_profile, _churn_train),
    "churn-score": (_profile, _churn_registry),
}
"""Every command's pipeline, its stages in execution order: ``run`` (``crm-engine run``: fit
every model, write the run output, backtest the earlier runs, measure drift), ``score-only``
(``run --score-only``: the same with the registered models), and one per stage command
(``features``, ``segment``, ``value``, ``churn train``, ``churn score``: the profile and that
stage, writing the stage's own files)."""


def pipeline(
    name: str, only: Sequence[str] | None = None, options: StageOptions | None = None
) -> list[Stage]:
    """The stages of the named pipeline, built with the command's ``options``.

    Parameters
    ----------
    name
        A key of :data:`PIPELINES`.
    only
        Keep only these of the model stages (:data:`STAGE_NAMES`; ``crm-engine run --stages``):
        the profile, and the stages that write, backtest and measure drift, always run.
    options
        What the command passes to its stages (default: none).

    Raises
    ------
    ValueError
        An unknown pipeline or stage name.
    """
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline {name!r}; one of: {', '.join(PIPELINES)}")
    wanted = set(only or STAGE_NAMES) | {"profile"}
    unknown = wanted - set(STAGE_NAMES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; allowed: {', '.join(STAGE_NAMES)}")
    stages = [build(options or StageOptions()) for build in PIPELINES[name]]
    return [s for s in stages if s.name in wanted or s.name not in STAGE_NAMES]
