"""The batch pipeline: validate, run stages in order, write outputs atomically, track in MLflow.

Stages are declared as data (`Stage`: name, function, inputs, outputs). The runner owns the
catalog of named artefacts, opens a nested MLflow run around each stage and does all writing;
a stage function gets its inputs and returns its outputs, metrics and files to attach.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from crm_engine.config import PipelineConfig
from crm_engine.contracts import SCORES_CONTRACT
from crm_engine.io import DataError, atomic_directory, load_tables, write_parquet_atomic
from crm_engine.report import ReportInputs, write_report
from crm_engine.scores import conform_scores
from crm_engine.validation import ValidationReport, validate
from pipelines.manifest import input_fingerprints, output_checksums, write_manifest

OUTPUT_FILES = [
    "scores.parquet",
    "profiles.parquet",
    "segment_profiles.parquet",
    "manifest.json",
    "report.html",
]


@dataclass
class StageOutput:
    """What a stage hands back to the runner."""

    outputs: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)
    model_versions: dict[str, str] = field(default_factory=dict)


@dataclass
class StageContext:
    """Run-wide facts a stage may read (never mutate), and the per-run profile cache."""

    cfg: PipelineConfig
    as_of: dt.date
    workdir: Path
    tracking: bool
    registry: bool = False
    previous_output: Path | None = None
    tables: dict[str, pl.LazyFrame] = field(default_factory=dict)
    _profiles: dict[dt.date, pl.DataFrame] = field(default_factory=dict, repr=False)

    def profile_at(self, cut: dt.date) -> pl.DataFrame:
        """The point-in-time profile at ``cut``, built once per run and shared by the stages.

        The valuation holdout and the churn validation cut often ask for the same date.
        """
        if cut not in self._profiles:
            import features

            if not self.tables:
                raise StageError("StageContext.profile_at needs the run's tables")
            self._profiles[cut] = features.build_profile(
                self.tables, cut, self.cfg.features
            ).collect(engine="streaming")
        return self._profiles[cut]


StageFn = Callable[..., StageOutput]


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: its name, function, the catalog entries it reads and writes."""

    name: str
    func: StageFn
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    optional_inputs: tuple[str, ...] = ()


@dataclass
class RunResult:
    """The outcome of a pipeline run."""

    run_id: str
    as_of: dt.date
    output_dir: Path
    scores_rows: int
    summary: dict[str, Any]
    timings: dict[str, float]
    mlflow_run_id: str | None
    tracking_uri: str | None
    validation: ValidationReport


class StageError(RuntimeError):
    """A stage failed or broke its contract; names the stage, what it expected and what came."""


def _guess_as_of(data_dir: Path) -> dt.date | None:
    """The default as_of (month after the last transaction), or None when it cannot be read:
    validation then reports why."""
    from features import default_as_of

    try:
        return default_as_of(load_tables(data_dir)["transactions"])
    except Exception:
        return None


ProgressFn = Callable[[str, str, float | None], None]


def _noop(stage: str, state: str, seconds: float | None) -> None:
    return None


def run_pipeline(
    cfg: PipelineConfig,
    stages: list[Stage],
    *,
    tracking: bool = True,
    registry: bool = False,
    progress: ProgressFn = _noop,
) -> RunResult:
    """Run the given stages over the configured data and write every output atomically.

    Parameters
    ----------
    cfg
        The resolved pipeline configuration.
    stages
        Stages in execution order (see `pipelines.stages.default_stages`).
    tracking
        Log a parent MLflow run with a nested run per stage.
    registry
        Load registered models instead of training (``--score-only --registry``).
    progress
        Called with (stage, "start" | "done", seconds).

    Raises
    ------
    DataError
        When validation finds errors: nothing is written.
    StageError
        When a stage fails: the previous output directory is left untouched.
    """
    data_dir = Path(cfg.data.dir)
    out_dir = Path(cfg.output.dir)
    progress("validate", "start", None)
    t0 = time.perf_counter()
    as_of = cfg.data.as_of or _guess_as_of(data_dir)
    report = validate(data_dir, as_of)
    report.raise_for_errors()
    if as_of is None:
        raise DataError(f"transactions in {data_dir}: no timestamps to date the run; pass --as-of")
    tables = load_tables(data_dir)
    timings = {"validate": round(time.perf_counter() - t0, 3)}
    progress("validate", "done", timings["validate"])

    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    catalog: dict[str, Any] = {"tables": tables}
    reports: dict[str, Any] = {"validation": report.summary()}
    metrics: dict[str, Any] = {}
    model_versions: dict[str, str] = {}
    artifacts: dict[str, Path] = {}
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    previous = out_dir if (out_dir / "manifest.json").is_file() else None

    with atomic_directory(out_dir) as work:
        ctx = StageContext(
            cfg=cfg,
            as_of=as_of,
            workdir=work,
            tracking=tracking,
            registry=registry,
            previous_output=previous,
            tables=tables,
        )
        parent = None
        if tracking:
            from crm_engine import tracking as trk

            tracking_uri = trk.configure(cfg.mlflow, out_dir)
            parent = trk.parent_run(
                f"crm-{as_of.isoformat()}",
                tags={"crm.run_id": run_id, "crm.as_of": as_of.isoformat()},
            )
            active = parent.__enter__()
            mlflow_run_id = active.info.run_id
            trk.log_params(
                {
                    "as_of": as_of.isoformat(),
                    "data_dir": str(data_dir),
                    "stages": ",".join(s.name for s in stages),
                }
            )
        try:
            for stage in stages:
                missing = [i for i in stage.inputs if i not in catalog]
                if missing:
                    raise StageError(
                        f"stage {stage.name} expected inputs {list(stage.inputs)}; "
                        f"missing {missing} (run the stages that produce them)"
                    )
                progress(stage.name, "start", None)
                t = time.perf_counter()
                kwargs = {i: catalog[i] for i in stage.inputs}
                kwargs |= {i: catalog.get(i) for i in stage.optional_inputs}
                result = _run_stage(stage, ctx, kwargs, tracking)
                absent = [o for o in stage.outputs if o not in result.outputs]
                if absent:
                    raise StageError(
                        f"stage {stage.name} promised {list(stage.outputs)}; "
                        f"did not return {absent}"
                    )
                catalog.update(result.outputs)
                timings[stage.name] = round(time.perf_counter() - t, 3)
                metrics[stage.name] = result.metrics
                if result.report:
                    reports[stage.name] = result.report
                model_versions.update(result.model_versions)
                artifacts.update(result.artifacts)
                progress(stage.name, "done", timings[stage.name])

            progress("write", "start", None)
            t = time.perf_counter()
            summary, summary_inputs = _write_outputs(
                work,
                catalog,
                reports,
                metrics,
                model_versions,
                artifacts,
                cfg=cfg,
                as_of=as_of,
                run_id=run_id,
                mlflow_run_id=mlflow_run_id,
                tracking_uri=tracking_uri,
                timings=timings,
                validation=report,
            )
            timings["write"] = round(time.perf_counter() - t, 3)
            progress("write", "done", timings["write"])
            if tracking:
                from crm_engine import tracking as trk

                trk.log_metrics({"timing_s": timings, "scores_rows": summary["customers_scored"]})
                import mlflow

                # The analyst's report lists top customers; MLflow gets aggregates only.
                with tempfile.TemporaryDirectory() as tmp:
                    shared = dataclasses.replace(summary_inputs, customer_rows=False)
                    mlflow.log_artifact(str(write_report(shared, Path(tmp) / "report.html")))
                mlflow.log_artifact(str(work / "manifest.json"))
        except BaseException:
            if parent is not None:
                import mlflow

                mlflow.end_run(status="FAILED")
                parent = None
            raise
        finally:
            if parent is not None:
                parent.__exit__(None, None, None)
    return RunResult(
        run_id=run_id,
        as_of=as_of,
        output_dir=out_dir,
        scores_rows=summary["customers_scored"],
        summary=summary,
        timings=timings,
        mlflow_run_id=mlflow_run_id,
        tracking_uri=tracking_uri,
        validation=report,
    )


def _run_stage(
    stage: Stage, ctx: StageContext, kwargs: dict[str, Any], tracking: bool
) -> StageOutput:
    try:
        if not tracking:
            return stage.func(ctx, **kwargs)
        from crm_engine import tracking as trk

        with trk.stage_run(stage.name):
            result = stage.func(ctx, **kwargs)
            trk.log_params(result.params)
            trk.log_metrics(result.metrics)
            import mlflow

            for path in result.artifacts.values():
                if Path(path).is_file():
                    mlflow.log_artifact(str(path))
            return result
    except (DataError, StageError):
        raise
    except Exception as e:
        raise StageError(f"stage {stage.name} failed: {type(e).__name__}: {e}") from e


def _write_outputs(
    work: Path,
    catalog: dict[str, Any],
    reports: dict[str, Any],
    metrics: dict[str, Any],
    model_versions: dict[str, str],
    artifacts: dict[str, Path],
    *,
    cfg: PipelineConfig,
    as_of: dt.date,
    run_id: str,
    mlflow_run_id: str | None,
    tracking_uri: str | None,
    timings: dict[str, float],
    validation: ValidationReport,
) -> tuple[dict[str, Any], ReportInputs]:
    profile: pl.DataFrame = catalog["profile"]
    fallback = profile.with_columns(pl.lit(as_of).alias("as_of"))
    scores = conform_scores(catalog.get("scores", fallback))
    meta = {
        "crm.contract": SCORES_CONTRACT,
        "crm.run_id": run_id,
        "crm.as_of": as_of.isoformat(),
        "crm.model_versions": json.dumps(model_versions, sort_keys=True),
    }
    if mlflow_run_id:
        meta["crm.mlflow_run_id"] = mlflow_run_id
    write_parquet_atomic(scores, work / "scores.parquet", meta)
    write_parquet_atomic(profile, work / "profiles.parquet", {"crm.as_of": as_of.isoformat()})
    seg_profiles: pl.DataFrame | None = catalog.get("segment_profiles")
    if seg_profiles is None:
        seg_profiles = pl.DataFrame(
            schema={
                "segment_id": pl.Int64,
                "segment_name": pl.String,
                "size": pl.Int64,
                "share": pl.Float64,
            }
        )
    write_parquet_atomic(seg_profiles, work / "segment_profiles.parquet")
    summary = _summary(scores)
    report_inputs = ReportInputs(
        scores=scores,
        as_of=as_of,
        run_id=run_id,
        segment_profiles=seg_profiles,
        migration=catalog.get("segment_migration"),
        valuation=reports.get("valuation"),
        churn=reports.get("churn"),
        warnings=validation.summary()["warnings"],  # type: ignore[arg-type]
        images=artifacts,
        mlflow_run_id=mlflow_run_id,
        tracking_uri=tracking_uri,
    )
    write_report(report_inputs, work / "report.html")
    rows = {t.name: t.rows for t in validation.tables}
    manifest = {
        "contract": SCORES_CONTRACT,
        "run_id": run_id,
        "mlflow_run_id": mlflow_run_id,
        "tracking_uri": tracking_uri,
        "as_of": as_of.isoformat(),
        "config": cfg.model_dump(mode="json"),
        "inputs": input_fingerprints(Path(cfg.data.dir), rows),
        "validation": reports.get("validation"),
        "outputs": {
            "scores.parquet": {"rows": scores.height},
            "profiles.parquet": {"rows": profile.height},
            "segment_profiles.parquet": {"rows": seg_profiles.height},
        },
        "model_versions": model_versions,
        "timings_s": timings,
        "metrics": metrics,
        "summary": summary,
        **{k: v for k, v in reports.items() if k not in ("validation",)},
    }
    checks = output_checksums(
        work, ["scores.parquet", "profiles.parquet", "segment_profiles.parquet", "report.html"]
    )
    for name, c in checks.items():
        manifest["outputs"].setdefault(name, {}).update(c)
    write_manifest(work / "manifest.json", manifest)
    return summary, report_inputs


def _summary(scores: pl.DataFrame) -> dict[str, Any]:
    def total(col: str) -> float | None:
        if scores[col].null_count() == scores.height:
            return None
        return float(scores[col].sum())

    return {
        "customers_scored": scores.height,
        "segments": (
            None
            if scores["segment_id"].null_count() == scores.height
            else int(scores["segment_id"].n_unique())
        ),
        "total_clv": total("clv"),
        "high_churn_risk": (
            None
            if scores["churn_risk_band"].null_count() == scores.height
            else int((scores["churn_risk_band"] == "high").sum())
        ),
        "value_at_risk": total("value_at_risk"),
    }
