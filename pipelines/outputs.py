"""What each command writes: the run output directory, or one stage's own output files.

Each function returns an `Output` for `run_pipeline`; its ``write`` only writes into the staging
directory it is given, and the runner commits that directory atomically.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from crm_engine.commit import STALE_SUFFIX, current_run
from crm_engine.contracts import LOST_BAND, SCORES_CONTRACT, SCORES_CONTRACT_VERSION
from crm_engine.io import file_sha256, frame_height, table_path, write_json, write_parquet
from crm_engine.parts import count_rows, exact_sums, group_sums, parts_of
from crm_engine.report import SAVE_FIRST_FILE, Logged, ReportInputs, save_first, write_report
from crm_engine.report.views import Scores, as_parts
from crm_engine.scores import PROFILES_TABLE, SCORES_TABLE
from crm_engine.stage_reports import SegmentationReport, ValuationReport, to_jsonable
from pipelines.backtest import PREVIOUS_RUN_KEY
from pipelines.manifest import output_checksums, recorded_sha256
from pipelines.runner import Output, RunState, Written


def run_files(single_file: bool = True) -> list[str]:
    """What a committed run holds: its scores and profiles in the form ``output.single_file``
    asks for (a file each, or a directory of parts each), and its other files."""
    tables = (
        table_path(Path(), name, single_file=single_file).name
        for name in (SCORES_TABLE, PROFILES_TABLE)
    )
    return [*tables, "segment_profiles.parquet", "manifest.json", "report.html", SAVE_FIRST_FILE]


OUTPUT_FILES = list(dict.fromkeys([*run_files(True), *run_files(False)]))
"""Every name a run output may expose as ``out/<name>``: exposed while the current run has it."""

VALUES_CONTRACT = "crm.values/v1"
SEGMENTS_CONTRACT = "crm.segments/v1"
SEGMENT_PROFILES_SCHEMA = pl.Schema(
    {"segment_id": pl.Int64, "segment_name": pl.String, "size": pl.Int64, "share": pl.Float64}
)


# --- the run output ------------------------------------------------------------------------


def run_directory(out_dir: Path) -> Output:
    """The whole run: scores, profiles, segment profiles, report and manifest, committed as
    ``out_dir/runs/<run_id>`` and exposed as ``out_dir/current`` and ``out_dir/<file>``."""
    out_dir = Path(out_dir)

    def write(state: RunState, work: Path, scratch: Path) -> Written:
        return _write_run(state, work, scratch, _current_run_id(out_dir))

    return Output(
        directory=out_dir,
        write=write,
        layout="run",
        links=tuple(OUTPUT_FILES),
        previous=current_run(out_dir),
    )


def _current_run_id(out_dir: Path) -> str | None:
    """The id of the run ``out_dir/current`` is now (read under the run's lock, just before the
    commit): the run this one follows, recorded as its manifest's ``previous_run_id``."""
    current = current_run(out_dir)
    if current is None:
        return None
    try:
        run_id = json.loads((current / "manifest.json").read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return run_id if isinstance(run_id, str) else None


def _write_run(
    state: RunState, work: Path, scratch: Path, previous_run_id: str | None = None
) -> Written:
    from segmentation.store import MODEL_FILE

    catalog = state.catalog
    as_of = state.as_of
    # everyone's scores where they lie: in memory, or the executors' files (Spark)
    scores = parts_of(catalog["scores"])
    n_scores = frame_height(catalog["scores"])
    profile: pl.LazyFrame = catalog["profile"]  # a scan: written a slice at a time
    meta = {
        "crm.contract": SCORES_CONTRACT,
        "crm.contract_version": SCORES_CONTRACT_VERSION,
        "crm.run_id": state.run_id,
        "crm.as_of": as_of.isoformat(),
        "crm.model_versions": json.dumps(state.model_versions, sort_keys=True),
    }
    if state.mlflow_run_id:
        meta["crm.mlflow_run_id"] = state.mlflow_run_id
    output = state.cfg.output
    part_rows = None if output.single_file else output.part_rows
    scores_path = table_path(work, SCORES_TABLE, single_file=output.single_file)
    profiles_path = table_path(work, PROFILES_TABLE, single_file=output.single_file)
    write_parquet(scores.pieces(), scores_path, meta, part_rows=part_rows)
    write_parquet(profile, profiles_path, {"crm.as_of": as_of.isoformat()}, part_rows=part_rows)
    seg_profiles = catalog.get("segment_summary")
    if seg_profiles is None:
        seg_profiles = pl.DataFrame(schema=SEGMENT_PROFILES_SCHEMA)
    write_parquet(seg_profiles, work / "segment_profiles.parquet")
    # Customer rows for the retention team: columns of scores.parquet only, never logged to MLflow.
    first = save_first(scores, state.cfg.output.save_first_rows)
    first.write_csv(work / SAVE_FIRST_FILE)
    summary = _summary(scores)
    warnings = state.validation.summary()["warnings"] if state.validation else []
    report_inputs = ReportInputs(
        scores=scores,
        as_of=as_of,
        run_id=state.run_id,
        segment_profiles=seg_profiles,
        migration=catalog.get("segment_migration"),
        valuation=state.reports.get("valuation"),
        churn=state.reports.get("churn"),
        warnings=warnings,  # type: ignore[arg-type]
        images=state.artifacts,
        mlflow_run_id=state.mlflow_run_id,
        tracking_uri=state.tracking_uri,
        population=state.reports.get("profile"),
        currency=state.cfg.output.currency,
        save_first_file=SAVE_FIRST_FILE,
        save_first_rows=state.cfg.output.save_first_rows,
        age_bands=state.cfg.features.age_bands,
        backtest=state.reports.get("backtest"),
        drift=state.reports.get("drift"),
        logged={
            name: Logged(state.metrics.get(name, {}), state.params.get(name, {}))
            for name in state.stages
        },
    )
    # The analyst's report lists top customers and links save_first.csv; MLflow's copy (a run
    # with MLflow) gets aggregates only.
    shared = scratch / "report.html" if state.mlflow_run_id else None
    write_report(report_inputs, work / "report.html", shared)
    _carry_segmenter(state, work)
    manifest: dict[str, Any] = {
        "contract": SCORES_CONTRACT,
        "contract_version": SCORES_CONTRACT_VERSION,
        "run_id": state.run_id,
        PREVIOUS_RUN_KEY: previous_run_id,
        "mlflow_run_id": state.mlflow_run_id,
        "tracking_uri": state.tracking_uri,
        "as_of": as_of.isoformat(),
        "config": state.cfg.model_dump(mode="json"),
        "inputs": state.input_fingerprints(),
        "validation": state.reports.get("validation"),
        "outputs": {
            scores_path.name: {"rows": n_scores},
            profiles_path.name: {"rows": frame_height(profile)},
            "segment_profiles.parquet": {"rows": seg_profiles.height},
            SAVE_FIRST_FILE: {"rows": first.height},
        },
        "model_versions": state.model_versions,
        "timings_s": state.timings,
        "metrics": state.metrics,
        "summary": summary,
        **{k: to_jsonable(v) for k, v in state.reports.items() if k != "validation"},
    }
    checks = output_checksums(
        work,
        [
            scores_path.name,
            profiles_path.name,
            "segment_profiles.parquet",
            "report.html",
            SAVE_FIRST_FILE,
            MODEL_FILE,
        ],
    )
    for name, c in checks.items():
        manifest["outputs"].setdefault(name, {}).update(c)
    write_json(work / "manifest.json", manifest)
    return Written(
        summary=summary,
        metrics={"scores_rows": n_scores},
        mlflow_artifacts=[*([shared] if shared else []), work / "manifest.json"],
    )


def _carry_segmenter(state: RunState, work: Path) -> None:
    """A run that did not segment keeps the last model, so the next one can still align ids.

    Only a model that still has the checksum its run recorded is carried.
    """
    from segmentation.store import MODEL_FILE

    previous = state.previous_output
    if (work / MODEL_FILE).exists() or previous is None or not (previous / MODEL_FILE).is_file():
        return
    recorded = recorded_sha256(previous, MODEL_FILE)
    if recorded is not None and recorded == file_sha256(previous / MODEL_FILE):
        shutil.copy2(previous / MODEL_FILE, work / MODEL_FILE)


def _summary(scores: Scores) -> dict[str, Any]:
    """The run's headline figures (``manifest.json``'s ``summary``; what ``crm-engine run``
    prints), from aggregates of the scores where they lie: None for a stage that did not run."""
    parts = as_parts(scores)
    has = ("segment_id", "clv", "churn_risk_band", "value_at_risk", "value_at_risk_network")
    band = pl.col("churn_risk_band")
    rows, *valued, high, lost = count_rows(
        parts,
        pl.lit(True),
        *(pl.col(c).is_not_null() for c in has),
        band == "high",
        band == LOST_BAND,
    )
    ran = dict(zip(has, (n > 0 for n in valued), strict=True))
    clv, at_risk, network = exact_sums(parts, "clv", "value_at_risk", "value_at_risk_network")
    segments = None
    if ran["segment_id"]:
        ids = group_sums(parts, [pl.col("segment_id")])
        segments = ids.filter(pl.col("segment_id").is_not_null()).height
    return {
        "customers_scored": rows,
        "segments": segments,
        "total_clv": clv if ran["clv"] else None,
        "high_churn_risk": high if ran["churn_risk_band"] else None,
        "value_at_risk": at_risk if ran["value_at_risk"] else None,
        "value_at_risk_network": network if ran["value_at_risk_network"] else None,
        "lost_customers": lost if ran["churn_risk_band"] else None,
    }


# --- one stage's own output ------------------------------------------------------------------


def profile_file(out: Path) -> Output:
    """``crm-engine features``: the profile at as_of in ``out`` (contract ``crm.profile/v1``)."""
    from features import PROFILE_CONTRACT

    out = Path(out)

    def write(state: RunState, work: Path, scratch: Path) -> Written:
        profile: pl.LazyFrame = state.catalog["profile"]
        meta = {"contract": PROFILE_CONTRACT, "as_of": state.as_of.isoformat()}
        write_parquet(profile, work / out.name, meta)
        return Written(summary={"rows": frame_height(profile), "path": str(out)})

    return Output(directory=out.parent, write=write)


def segment_files(out: Path) -> Output:
    """``crm-engine segment``: segments in ``out``; profiles, model, report, migration beside it.

    A migration matrix left by an earlier aligned run is removed when this run has none: it
    would describe another pair of models.
    """
    from segmentation.store import LEGACY_MODEL_FILE, MODEL_FILE

    out = Path(out)

    def write(state: RunState, work: Path, scratch: Path) -> Written:
        catalog, as_of = state.catalog, state.as_of
        report: SegmentationReport = state.reports["segmentation"]
        meta = {
            "contract": SEGMENTS_CONTRACT,
            "as_of": as_of.isoformat(),
            "segmentation.algorithm": report.algorithm,
            "segmentation.k": str(report.k),
        }
        segments = (
            parts_of(catalog["segments"])  # Spark: the executors' files
            .with_columns(pl.lit(as_of).alias("as_of"))
            .select(
                ["customer_id", "as_of", "spend_level", "age_band", "segment_id", "segment_name"]
            )
        )
        write_parquet(segments.pieces(), work / out.name, meta)
        write_parquet(catalog["segment_profiles"], work / "segment_profiles.parquet", meta)
        migration = catalog.get("segment_migration")
        if migration is not None:
            write_parquet(migration, work / "segment_migration.parquet", meta)
        else:
            (work / f"segment_migration.parquet{STALE_SUFFIX}").touch()
        record = {
            "as_of": as_of.isoformat(),
            "model_sha256": file_sha256(work / MODEL_FILE),
            **report.to_dict(),
        }
        write_json(work / "segmentation.json", record)
        (work / f"{LEGACY_MODEL_FILE}{STALE_SUFFIX}").touch()  # the old pickle goes
        files = [out.name, "segment_profiles.parquet", MODEL_FILE, "segmentation.json"]
        if migration is not None:
            files.append("segment_migration.parquet")
        return Written(summary={"files": files, "rows": frame_height(catalog["segments"])})

    models = (out.parent / MODEL_FILE, out.parent / LEGACY_MODEL_FILE)
    previous = out.parent if any(m.is_file() for m in models) else None
    return Output(directory=out.parent, write=write, previous=previous)


def values_files(out: Path) -> Output:
    """``crm-engine value``: values in ``out``; ``valuation.json`` and the holdout plot beside."""
    out = Path(out)

    def write(state: RunState, work: Path, scratch: Path) -> Written:
        values: pl.DataFrame | pl.LazyFrame = state.catalog["values"]  # Spark: a plan
        report: ValuationReport = state.reports["valuation"]
        plot = state.artifacts.get("valuation_holdout.png")
        files = [out.name, "valuation.json"]
        if plot is not None:
            plot.replace(work / plot.name)
            report = dataclasses.replace(report, holdout_plot=plot.name)
            files.append(plot.name)
        shutil.rmtree(work / "valuation", ignore_errors=True)
        meta = {
            "crm.contract": VALUES_CONTRACT,
            "crm.as_of": state.as_of.isoformat(),
            "crm.valuation.model": report.model,
        }
        write_parquet(parts_of(values).pieces(), work / out.name, meta)
        write_json(work / "valuation.json", report.to_dict())
        return Written(summary={"files": files, "rows": frame_height(values)})

    return Output(directory=out.parent, write=write)


def churn_scores_file(out: Path) -> Output:
    """``crm-engine churn score``: churn and loyalty scores at as_of in ``out``."""
    out = Path(out)

    def write(state: RunState, work: Path, scratch: Path) -> Written:
        churn_scores = state.catalog["churn_scores"]  # Spark: a plan of the executors' files
        columns = churn_scores.collect_schema().names()
        scores = (
            parts_of(churn_scores)
            .with_columns(pl.lit(state.as_of).alias("as_of"))
            .select(["customer_id", "as_of", *[c for c in columns if c != "customer_id"]])
        )
        meta = {
            "crm.as_of": state.as_of.isoformat(),
            "crm.model_versions": json.dumps(state.model_versions, sort_keys=True),
        }
        write_parquet(scores.pieces(), work / out.name, meta)
        bands = group_sums(scores, [pl.col("churn_risk_band")])
        (explained,) = count_rows(scores, pl.col("churn_drivers").list.len() > 0)
        return Written(
            summary={
                "rows": frame_height(churn_scores),
                "band_counts": {r["churn_risk_band"]: int(r["n"]) for r in bands.to_dicts()},
                "n_explained": explained,
            }
        )

    return Output(directory=out.parent, write=write)


def nothing() -> Output:
    """``crm-engine churn train``: no files (the models and metrics go to MLflow)."""

    def write(state: RunState, work: Path, scratch: Path) -> Written:
        return Written()

    return Output(directory=None, write=write)
