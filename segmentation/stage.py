"""The segmentation stage: frames in, assignments + model + profiles + migration out; and its
pipeline adapters (train, or assign with the registered model)."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

from crm_engine.config import FeaturesConfig, SegmentationConfig
from crm_engine.io import frame_height, map_slices
from crm_engine.parts import FrameParts, Parts, laid_out
from crm_engine.stage_reports import KScore, SegmentationReport, SegmentSize
from crm_engine.tracking import REGISTERED_MODELS, load_registered, require_registered
from features import frequent_values, pool_rare
from pipelines.runner import StageContext, StageError, StageOutput
from segmentation.align import align_segment_ids, migration_of, stability_of
from segmentation.assign import ASSIGN_ROWS, PREVIOUS_LABEL, assign_slice
from segmentation.bands import spend_cut_points
from segmentation.cluster import Segmenter, resolve_features
from segmentation.preprocess import default_features
from segmentation.profiles import segment_profiles

if TYPE_CHECKING:
    from pipelines.profiles import PartsMap

#: Columns of the assignments frame (``customer_id`` keeps the run's id type).
ASSIGNMENT_SCHEMA = pl.Schema(
    {
        "customer_id": pl.Int64(),
        "spend_level": pl.String(),
        "age_band": pl.String(),
        "segment_id": pl.Int64(),
        "segment_name": pl.String(),
    }
)


class SegmentationWarning(UserWarning):
    """Segmentation went on with a degraded result (for example ids not aligned)."""


@dataclass(frozen=True)
class SegmentationResult:
    """What the segmentation stage returns.

    Attributes
    ----------
    assignments
        ``customer_id``, ``spend_level``, ``age_band``, ``segment_id``, ``segment_name``
        (one row per profile row): in memory, in profile order; or, of assignments left on
        the executors (Spark), a plan over their files.
    model
        The fitted :class:`~segmentation.cluster.Segmenter` (ids aligned when a previous
        model was given).
    profiles
        One row per segment (:func:`~segmentation.profiles.segment_profiles`).
    migration
        Previous segment x new segment counts, or None without a previous model.
    report
        JSON-ready summary: ``k``, ``algorithm``, ``features``, per-k ``scores``, spend cut
        points, segment sizes, alignment and stability figures, timings.
    """

    assignments: pl.DataFrame | pl.LazyFrame
    model: Segmenter
    profiles: pl.DataFrame
    migration: pl.DataFrame | None
    report: SegmentationReport


def _json_float(x: Any) -> Any:
    if isinstance(x, float | np.floating):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def build_segmenter(cfg: SegmentationConfig, features: Sequence[str] | None = None) -> Segmenter:
    """An unfitted :class:`Segmenter` from the ``[segmentation]`` config section.

    ``features`` overrides ``cfg.features`` (the stage passes the resolved list).
    """
    chosen = features if features is not None else cfg.features
    return Segmenter(
        algorithm=cfg.algorithm,
        k=cfg.k,
        k_range=(cfg.k_min, cfg.k_max),
        sample_size=cfg.sample_size,
        silhouette_sample=cfg.silhouette_sample,
        features=list(chosen) if chosen is not None else None,
        random_state=cfg.seed,
        k_tolerance=cfg.k_tolerance,
        feature_weights=dict(cfg.feature_weights) or None,
    )


PROFILE_TABLE_COLUMNS = ("customer_id", "revenue_365d", "occupation", "region", "age_band")
"""The profile columns segmentation reads besides the clustering features: the spend levels and
age bands (:mod:`segmentation.bands`) and the segment profile table."""


def segment_customers(
    profile: pl.DataFrame | pl.LazyFrame,
    cfg: SegmentationConfig,
    previous: Segmenter | None = None,
    scores: pl.DataFrame | None = None,
    features_cfg: FeaturesConfig | None = None,
    map_everyone: PartsMap | None = None,
    everyone: Callable[[Sequence[str]], Parts] | None = None,
) -> SegmentationResult:
    """Spend levels, age bands and behavioural segments for every customer of ``profile``.

    Parameters
    ----------
    profile
        Customer profile (``features.build_profile``), one row per customer; of a plan only
        the columns segmentation reads are collected (the features and
        :data:`PROFILE_TABLE_COLUMNS`).
    cfg
        The ``[segmentation]`` section.
    previous
        The last run's fitted segmenter: new clusters are matched to its segments so ids keep
        their meaning, and a migration matrix is built. None starts ids at 0.
    scores
        Optional ``customer_id`` + ``clv`` / ``churn_probability`` for the profile table.
    features_cfg
        The ``[features]`` section the profile was built with: the default clustering
        features are named after its windows (:func:`~segmentation.preprocess.default_features`).
    map_everyone
        Applies :func:`assign_slice` to the profile's customers where their profile lies,
        reading the columns given, and leaves the results there (the run's
        ``ProfileCache.map_parts``: on the executors with Spark); None: :data:`ASSIGN_ROWS`
        customers at a time here. The fit reads only the rows it samples
        (``Segmenter.fit_rows``).
    everyone
        The given columns of the same profile where it lies (the run's ``ProfileCache.parts``:
        the executors' files with Spark); None: of ``profile`` here. The steps over everyone
        are aggregates of these and of the assignments, run there: the spend tertiles, the
        frequent text values, the segment table and the migration counts.

    Returns
    -------
    SegmentationResult

    Raises
    ------
    ValueError
        Empty profile, or a configured feature absent from the profile (the message names it).
    """
    columns = profile.collect_schema().names()
    if "customer_id" not in columns:
        raise ValueError("profile has no customer_id column")
    defaults = [f for f in default_features(features_cfg) if f in columns]
    features = resolve_features(
        columns, cfg.features if cfg.features is not None else defaults or None
    )
    usable_previous = previous
    if previous is not None:
        missing = [f for f in previous.features_ if f not in columns]
        if missing:
            warnings.warn(
                "previous segmentation model needs feature(s) absent from this profile "
                f"({', '.join(missing)}): segment ids are not aligned with the previous run",
                SegmentationWarning,
                stacklevel=2,
            )
            usable_previous = None
    needed = list(dict.fromkeys(features + (usable_previous.features_ if usable_previous else [])))
    read = [c for c in PROFILE_TABLE_COLUMNS if c in columns]
    source = profile.lazy().select(list(dict.fromkeys([*read, *needed])))
    n = frame_height(source)
    if n == 0:
        raise ValueError("cannot segment an empty profile (0 customers)")
    parts = FrameParts(source) if everyone is None else everyone(source.collect_schema().names())
    cuts = spend_cut_points(parts, cfg.spend_cut_points)
    k_min = (features_cfg or FeaturesConfig()).min_category_customers
    schema = source.collect_schema()
    text = [c for c in needed if schema[c] == pl.String]
    keep = frequent_values(parts.select(["customer_id", *text]), text, k_min)
    # only the rows the model fits on are read (at most cfg.sample_size): everyone is
    # assigned by the mapper, a slice at a time
    segmenter = build_segmenter(cfg, features)
    rows = segmenter.fit_rows(n)
    fitted = (
        source if rows is None else source.filter(pl.int_range(pl.len()).is_in(pl.Series(rows)))
    )
    X = pool_rare(fitted.select(needed).collect(), keep).to_pandas()

    t0 = time.perf_counter()
    model = segmenter.fit(X, population=n)
    t_fit = time.perf_counter() - t0

    align_report: dict[str, Any] = {}
    if usable_previous is not None:
        alignment = align_segment_ids(
            usable_previous, model, X, labels=model.labels_, random_state=cfg.seed
        )
        model.set_segment_ids(alignment.segment_ids, alignment.max_segment_id)
        align_report = {
            "aligned": True,
            "fresh_ids": alignment.n_fresh,
            "matches": alignment.matches.to_dicts(),
        }
    t_align = time.perf_counter() - t0 - t_fit
    del X  # the fitted rows' features (200,000 customers at most)

    assign = functools.partial(
        assign_slice, model=model, cuts=cuts, keep=keep, previous=usable_previous
    )
    assignments: Parts = (
        FrameParts(map_slices(source, assign, ASSIGN_ROWS))
        if map_everyone is None
        else map_everyone(assign, schema.names())
    )
    migration = None
    if usable_previous is not None:
        moves = assignments.aggregate(_moves)
        labels = moves.get_column(PREVIOUS_LABEL).to_numpy()
        migration = migration_of(
            moves.with_columns(
                pl.Series("previous_segment_id", usable_previous.segment_ids_[labels]),
                pl.Series(
                    "previous_segment_name",
                    np.asarray(usable_previous.segment_names_, dtype=object)[labels].tolist(),
                    dtype=pl.String,
                ),
            )
        )
        align_report["migration"] = migration.to_dicts()
        align_report["same_segment_share"] = stability_of(migration)
    profiles = segment_profiles(assignments, parts, model.features_, scores)
    # the assembly joins the parts
    segments: pl.DataFrame | pl.LazyFrame = laid_out(assignments.select(ASSIGNMENT_SCHEMA.names()))
    if isinstance(assignments, FrameParts):  # in memory: the frame, in the profile's row order
        segments = segments.collect()

    report = SegmentationReport(
        algorithm=cfg.algorithm,
        k=int(model.k_),
        k_search=cfg.k == "auto",
        features=list(model.features_),
        n_customers=n,
        fit_rows=min(n, cfg.sample_size),
        scores=[
            KScore(
                k=int(row["k"]),
                silhouette=_json_float(row.get("silhouette")),
                bic=_json_float(row.get("bic")),
                inertia=_json_float(row.get("inertia")),
                chosen=bool(row["chosen"]),
            )
            for row in model.scores_.to_dict(orient="records")
        ],
        spend_cut_points=[float(c) for c in cuts],
        segments=[
            SegmentSize(int(r["segment_id"]), r["segment_name"], int(r["size"]))
            for r in profiles.select("segment_id", "segment_name", "size").iter_rows(named=True)
        ],
        timings_s={"fit": round(t_fit, 3), "align": round(t_align, 3)},
        **align_report,
    )
    return SegmentationResult(
        assignments=segments,
        model=model,
        profiles=profiles,
        migration=migration,
        report=report,
    )


def _moves(assigned: pl.DataFrame) -> pl.DataFrame:
    """A slice of the assignments (with the previous model's labels) counted by the previous
    label and the new segment: the migration's counts, added up by ``migration_of``."""
    return assigned.group_by(PREVIOUS_LABEL, "segment_id", "segment_name").agg(
        pl.len().cast(pl.Int64).alias("customers")
    )


# --- the pipeline stage (training, and loading from the registry) ---------------------------


PreviousModel = Path | Literal[False] | None
"""A previous segmentation model: a file, False for none, None for the last run's if any."""


def _previous_segmenter(
    ctx: StageContext, previous: PreviousModel
) -> tuple[Path | None, str | None]:
    """The previous model's file and the sha256 its run recorded (None: the user named it)."""
    from pipelines.manifest import recorded_sha256
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
    ctx: StageContext, profile: pl.DataFrame | pl.LazyFrame, *, previous: PreviousModel = None
) -> StageOutput:
    """Bands and behavioural segments; ids aligned with the previous run's model when present."""
    from segmentation.store import MODEL_FILE, load_segmenter, save_segmenter

    previous_path, sha256 = _previous_segmenter(ctx, previous)
    previous_model = load_segmenter(previous_path, sha256) if previous_path is not None else None
    if frame_height(profile) == 0:
        raise StageError(f"segmentation: no active customers at as_of={ctx.as_of}")
    result = segment_customers(
        profile,
        ctx.cfg.segmentation,
        previous=previous_model,
        features_cfg=ctx.cfg.features,
        map_everyone=functools.partial(ctx.profiles.map_parts, profile),
        everyone=functools.partial(ctx.profiles.parts, profile),
    )
    save_segmenter(result.model, ctx.workdir / MODEL_FILE)
    versions: dict[str, str] = {}
    if ctx.tracking:
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


def segmentation_registry_stage(
    ctx: StageContext, profile: pl.DataFrame | pl.LazyFrame
) -> StageOutput:
    """Assign segments with the latest registered segmentation model (no refit); of a plan only
    the model's features and :data:`PROFILE_TABLE_COLUMNS` are read, as in training."""
    from segmentation.pyfunc import load_segmentation_model

    uri = require_registered("segmentation")
    segmenter = load_registered(uri, load_segmentation_model)
    columns = profile.collect_schema().names()
    read = [c for c in (*PROFILE_TABLE_COLUMNS, *segmenter.features_) if c in columns]
    source = profile.lazy().select(list(dict.fromkeys(read)))
    names = source.collect_schema().names()
    everyone = ctx.profiles.parts(profile, names)
    cuts = spend_cut_points(everyone, ctx.cfg.segmentation.spend_cut_points)
    assign = functools.partial(assign_slice, model=segmenter, cuts=cuts, keep=None)
    assigned = ctx.profiles.map_parts(profile, assign, names)
    profiles = segment_profiles(assigned, everyone, segmenter.features_, None)
    assignments: pl.DataFrame | pl.LazyFrame = laid_out(assigned.select(ASSIGNMENT_SCHEMA.names()))
    if isinstance(assigned, FrameParts):  # in memory: the frame, in the profile's row order
        assignments = assignments.collect()
    return StageOutput(
        outputs={"segments": assignments, "segment_profiles": profiles, "segment_migration": None},
        metrics={"customers": int(profiles.get_column("size").sum())},
        params={"model_uri": uri},
        model_versions={"segmentation": uri},
    )
