"""The batch pipeline: validate, open tracking, run stages in order, write and commit.

Stages are declared as data (`Stage`: name, function, inputs, outputs, declared schemas). The
runner owns the catalog of named artefacts, checks every stage's outputs against their declared
schemas, opens a nested MLflow run around each stage and does all writing through an `Output`:
a stage function gets its inputs and returns its outputs, metrics and files to attach. Every
command (`run`, `features`, `segment`, `value`, `churn train|score`) is this runner with a
subset of the stages and its own `Output`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from crm_engine.commit import (
    atomic_directory,
    committed_run,
    fault_point,
    output_lock,
    scratch_directory,
)
from crm_engine.config import PipelineConfig
from crm_engine.contracts import schema_difference
from crm_engine.io import DEPENDENCY_ERRORS, DataError, failure
from crm_engine.memory import release_freed
from crm_engine.threads import thread_budget
from crm_engine.validation import ValidationReport
from features.point_in_time import PointInTime
from features.sample import CustomerSample
from pipelines.inputs import backend_session, data_directory, prepare_inputs
from pipelines.manifest import InputHashing, input_fingerprints
from pipelines.profiles import ProfileBuilder, ProfileCache, local_profile

if TYPE_CHECKING:
    from pipelines.spark.session import LazySession


@dataclass
class StageOutput:
    """What a stage hands back to the runner."""

    outputs: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    report: Any = None
    artifacts: dict[str, Path] = field(default_factory=dict)
    model_versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StageContext:
    """Run-wide facts a stage reads; never changed while the run goes. The profiles it hands
    out come from ``profiles``, the run's one cache (:class:`~pipelines.profiles.ProfileCache`).
    """

    cfg: PipelineConfig
    as_of: dt.date
    workdir: Path
    tracking: bool
    tables: dict[str, pl.LazyFrame] = field(default_factory=dict)
    previous_output: Path | None = None
    output_dir: Path | None = None
    """The run output directory (``out/`` of ``runs/`` and ``current``); None for a stage
    command's files. The backtest reads its earlier committed runs."""
    build_profile: InitVar[ProfileBuilder | None] = None
    """How profiles are computed (None: :func:`~pipelines.profiles.local_profile`; the local
    backend's buckets and the Spark backend set their own)."""
    spill: InitVar[Path | None] = None
    """Where the profile at as_of of everyone waits between the stages that read it (None: in
    memory; see :class:`~pipelines.profiles.ProfileCache`)."""
    profiles: ProfileCache = field(init=False, repr=False, compare=False)
    """The run's profiles by cut and sample, its customer count and data start."""

    def __post_init__(self, build_profile: ProfileBuilder | None, spill: Path | None) -> None:
        build = build_profile or local_profile
        cache = ProfileCache(self.tables, self.as_of, self.cfg.features, build, spill)
        object.__setattr__(self, "profiles", cache)

    @property
    def id_dtype(self) -> pl.DataType:
        """The run's customer id type (that of ``customers.customer_id``)."""
        if "customers" not in self.tables:
            return pl.Int64()
        return self.tables["customers"].collect_schema()["customer_id"]

    def bounded_sample(self, max_customers: int) -> CustomerSample | None:
        """About ``max_customers`` of the run's customers, chosen by a hash of their id (None:
        everyone, when they fit). Equal bounds give the same sample, so stages share profiles.
        """
        return CustomerSample.bounded(self.profiles.customers(), max_customers)

    def point_in_time(self, max_customers: int, *, hand_over: bool = False) -> PointInTime:
        """The run's point-in-time facts for a stage whose models learn on about
        ``max_customers`` customers (:meth:`bounded_sample`).

        ``hand_over``: for the last stage that reads earlier cuts (the churn training frames).
        Its earlier cuts' profiles are handed over (:meth:`ProfileCache.take
        <pipelines.profiles.ProfileCache.take>`), and its ``release`` forgets the others of
        earlier cuts (:meth:`~pipelines.profiles.ProfileCache.release_before` ``as_of``).
        Without it, profiles are shared through the cache (:meth:`ProfileCache.get
        <pipelines.profiles.ProfileCache.get>`) and ``release`` does nothing.
        """
        cache = self.profiles
        at = PointInTime(
            as_of=self.as_of,
            tables=self.tables,
            profile_at=cache.get,
            expect=cache.expect,
            start=cache.data_start(),
            sample=self.bounded_sample(max_customers),
            n_customers=cache.customers(),
            read_sample=cache.sampled,
            aggregate_table=cache.aggregate_table,
        )
        if not hand_over:
            return at
        release = functools.partial(cache.release_before, self.as_of)
        return dataclasses.replace(at, profile_at=cache.take, release=release)


StageFn = Callable[..., StageOutput]
SchemaFn = Callable[[StageContext], pl.Schema]


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: its name, function, the catalog entries it reads and writes.

    ``schemas`` declares, per frame output, the exact schema the stage must return (checked by
    the runner after the stage ran); ``owns`` names the ``crm.scores/v1`` owner labels whose
    columns this stage supplies (see ``crm_engine.contracts.SCORE_COLUMNS``).
    """

    name: str
    func: StageFn
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    optional_inputs: tuple[str, ...] = ()
    schemas: Mapping[str, SchemaFn] = field(default_factory=dict)
    owns: tuple[str, ...] = ()


@dataclass
class RunState:
    """Everything a run has produced so far; what an `Output` writes from."""

    cfg: PipelineConfig
    as_of: dt.date
    run_id: str
    stages: list[str]
    validation: ValidationReport | None
    catalog: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    """Per stage, the metrics logged to its MLflow run."""
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per stage, the parameters logged to its MLflow run."""
    model_versions: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    previous_output: Path | None = None
    """The last committed run's files (the `Output`'s ``previous``)."""
    input_hashing: InputHashing | None = None
    """The inputs' fingerprints, hashed while the stages run (a run output's manifest)."""

    def input_fingerprints(self) -> dict[str, Any]:
        """Per input table its files, rows and hash (:func:`pipelines.manifest.
        input_fingerprints`): from the hashing started with the run, else computed now."""
        if self.input_hashing is not None:
            return self.input_hashing.result()
        rows = {t.name: t.rows for t in self.validation.tables} if self.validation else {}
        return input_fingerprints(Path(self.cfg.data.dir), rows)


@dataclass
class Written:
    """What an `Output` wrote: a summary for the caller, metrics and files for the parent run."""

    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    mlflow_artifacts: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Output:
    """Where a run's files go and which files they are.

    ``write(state, work, scratch)`` writes into ``work``, a staging directory that
    :mod:`crm_engine.commit` commits when the run succeeds (and removes when it fails);
    ``scratch`` is a private temporary directory inside ``work`` for files that are only
    logged to MLflow; it is removed before the commit.

    ``layout="run"``: ``directory`` is a run output (``runs/<run_id>/`` made ``current`` by one
    rename, ``links`` exposed under stable names). ``layout="files"``: the staged files replace
    their namesakes in ``directory`` and everything else there stays (a stage command writing
    beside the user's files). ``directory=None`` writes no files (results only go to MLflow).
    ``previous`` is where the last committed run's files are, for stages that build on them.
    """

    directory: Path | None
    write: Callable[[RunState, Path, Path], Written]
    layout: Literal["run", "files"] = "files"
    links: tuple[str, ...] = ()
    previous: Path | None = None


@dataclass
class RunResult:
    """The outcome of a pipeline run."""

    run_id: str
    as_of: dt.date
    output_dir: Path | None
    summary: dict[str, Any]
    timings: dict[str, float]
    mlflow_run_id: str | None
    tracking_uri: str | None
    validation: ValidationReport | None
    reports: dict[str, Any]
    metrics: dict[str, Any]
    model_versions: dict[str, str]


class StageError(RuntimeError):
    """A stage failed or broke its contract; names the stage, what it expected and what came."""


ProgressFn = Callable[[str, str, float | None], None]


def _noop(stage: str, state: str, seconds: float | None) -> None:
    return None


def run_pipeline(
    cfg: PipelineConfig,
    stages: list[Stage],
    output: Output | None = None,
    *,
    tracking: bool = True,
    validate_inputs: bool = True,
    run_name: str = "crm",
    progress: ProgressFn = _noop,
) -> RunResult:
    """Run the given stages over the configured data and commit what ``output`` writes.

    Parameters
    ----------
    cfg
        The resolved pipeline configuration.
    stages
        Stages in execution order (a named pipeline: `pipelines.stages.pipeline`).
    output
        What to write and where; default: the whole run output in ``cfg.output.dir``
        (`pipelines.outputs.run_directory`).
    tracking
        Log a parent MLflow run with a nested run per stage.
    validate_inputs
        Check the input tables against their contracts first (off only for ``--no-validate``).
    run_name
        What ran, the prefix of the parent MLflow run's name ``<run_name>-<as_of>``.
    progress
        Called with (stage, "start" | "done", seconds).

    Raises
    ------
    DataError
        When validation finds errors: nothing is written.
    StageError
        When a stage fails: nothing is written, the previous output is left untouched.
    """
    # checked before anything is read or written (MLflow included), opened by validation
    with backend_session(cfg) as session:
        return _run(cfg, stages, output, session, tracking, validate_inputs, run_name, progress)


def _run(
    cfg: PipelineConfig,
    stages: list[Stage],
    output: Output | None,
    session: LazySession | None,
    tracking: bool,
    validate_inputs: bool,
    run_name: str,
    progress: ProgressFn,
) -> RunResult:
    """:func:`run_pipeline` on the Spark backend's ``session`` (None: the local backend)."""
    data_directory(cfg)  # refused before anything is read, written or shown
    if output is None:
        from pipelines.outputs import run_directory

        output = run_directory(Path(cfg.output.dir))
    progress("validate", "start", None)
    t0 = time.perf_counter()
    models = any(s.name in ("segmentation", "valuation", "churn") for s in stages)
    as_of, report, tables = prepare_inputs(cfg, validate_inputs, models, session)
    state = RunState(
        cfg=cfg,
        as_of=as_of,
        run_id=dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8],
        stages=[s.name for s in stages],
        validation=report,
        catalog={"tables": tables},
        previous_output=output.previous,
    )
    if report is not None:
        state.reports["validation"] = report.summary()
    if output.layout == "run" and output.directory is not None:
        rows = {t.name: t.rows for t in report.tables} if report else {}
        state.input_hashing = InputHashing(data_directory(cfg), rows)
    state.timings["validate"] = round(time.perf_counter() - t0, 3)
    progress("validate", "done", state.timings["validate"])

    with contextlib.ExitStack() as stack:
        stack.enter_context(thread_budget(cfg.engine.threads))
        if output.directory is not None:
            stack.enter_context(output_lock(output.directory))
        if tracking:  # entered before the commit: a run whose commit fails ends FAILED too
            stack.enter_context(_tracking(state, f"{run_name}-{as_of.isoformat()}"))
        work = Path(stack.enter_context(_commit(output, state)))
        # inside the staging directory, removed before the commit (the stack unwinds in
        # reverse): a kill leaves it where the next run removes the dead run's staging
        scratch = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix=".crm-run-", dir=work))
        )
        build_profile: ProfileBuilder | None = None  # local: Polars streaming
        if session is not None:
            from pipelines.spark import SparkProfiles

            build_profile = SparkProfiles(cfg, session, scratch / "spark")
        else:
            build_profile = _split(cfg, tables, as_of, scratch / "buckets", state, progress)
        ctx = StageContext(
            cfg=cfg,
            as_of=as_of,
            workdir=work,
            tracking=tracking,
            tables=tables,
            previous_output=output.previous,
            output_dir=output.directory if output.layout == "run" else None,
            build_profile=build_profile,
            spill=scratch / "profiles",
        )
        for stage in stages:
            _run_stage(stage, ctx, state, progress)
        progress("write", "start", None)
        t = time.perf_counter()
        written = output.write(state, work, scratch)
        state.timings["write"] = round(time.perf_counter() - t, 3)
        progress("write", "done", state.timings["write"])
        if tracking:
            _log_run(state, written)
    if tracking and cfg.mlflow.register_models:
        from crm_engine import tracking as trk

        # only now that the outputs are committed do later runs score with these models
        trk.promote(state.model_versions)
    return RunResult(
        run_id=state.run_id,
        as_of=as_of,
        output_dir=output.directory,
        summary=written.summary,
        timings=state.timings,
        mlflow_run_id=state.mlflow_run_id,
        tracking_uri=state.tracking_uri,
        validation=report,
        reports=state.reports,
        metrics=state.metrics,
        model_versions=state.model_versions,
    )


def _split(
    cfg: PipelineConfig,
    tables: dict[str, pl.LazyFrame],
    as_of: dt.date,
    directory: Path,
    state: RunState,
    progress: ProgressFn,
) -> ProfileBuilder:
    """The local backend's profile builder: the keyed tables split in ``engine.buckets``
    first (phase ``split``) when there are more than one."""
    from pipelines.buckets import LocalProfiles, bucket_count, split_tables

    customers = int(tables["customers"].select(pl.len()).collect().item())
    buckets = bucket_count(customers, cfg.engine)
    state.reports["buckets"] = buckets
    if buckets == 1:
        return LocalProfiles(as_of)
    progress("split", "start", None)
    t = time.perf_counter()
    try:
        split = split_tables(tables, directory, buckets)
    except DataError:
        raise
    except DEPENDENCY_ERRORS as e:  # unvalidated input (--no-validate): one line
        raise DataError(f"splitting the input in {buckets} buckets failed: {failure(e)}") from e
    fault_point("split")
    state.timings["split"] = round(time.perf_counter() - t, 3)
    progress("split", "done", state.timings["split"])
    return LocalProfiles(as_of, split)


def _commit(output: Output, state: RunState) -> contextlib.AbstractContextManager[Any]:
    """The staging directory of ``output``, committed when the run succeeds."""
    if output.directory is None:
        return scratch_directory()
    if output.layout == "run":
        keep = state.cfg.output.keep_runs
        return committed_run(output.directory, state.run_id, keep=keep, links=output.links)
    return atomic_directory(output.directory, merge=True, leftovers=True)  # we hold its lock


@contextlib.contextmanager
def _tracking(state: RunState, run_name: str) -> Iterator[None]:
    """The parent MLflow run, quiet; it ends FAILED when the run raises."""
    from crm_engine import tracking as trk

    cfg = state.cfg
    with trk.quiet():
        state.tracking_uri = trk.configure(cfg.mlflow, Path(cfg.output.dir))
        abandoned = trk.fail_abandoned_runs(cfg.mlflow.experiment)
        if abandoned:
            warnings.warn(
                f"{len(abandoned)} tracked run(s) of a crm-engine process that died were left "
                f"running; marked FAILED: {', '.join(abandoned)}",
                stacklevel=1,
            )
        tags = {"crm.run_id": state.run_id, "crm.as_of": state.as_of.isoformat()}
        with trk.parent_run(run_name, tags=tags) as run:
            state.mlflow_run_id = run.info.run_id
            trk.log_params(
                {
                    "as_of": state.as_of.isoformat(),
                    "data_dir": str(cfg.data.dir),
                    "stages": ",".join(state.stages),
                }
            )
            yield


def _log_run(state: RunState, written: Written) -> None:
    import mlflow

    from crm_engine import tracking as trk

    trk.log_metrics({"timing_s": state.timings, **written.metrics})
    for path in written.mlflow_artifacts:
        mlflow.log_artifact(str(path))


def _run_stage(stage: Stage, ctx: StageContext, state: RunState, progress: ProgressFn) -> None:
    """Run one stage, check what it returned against its declaration, file its outputs."""
    catalog = state.catalog
    missing = [i for i in stage.inputs if i not in catalog]
    if missing:
        raise StageError(
            f"stage {stage.name} expected inputs {list(stage.inputs)}; "
            f"missing {missing} (run the stages that produce them)"
        )
    progress(stage.name, "start", None)
    fault_point(f"stage:{stage.name}")
    t = time.perf_counter()
    kwargs = {i: catalog[i] for i in stage.inputs}
    kwargs |= {i: catalog.get(i) for i in stage.optional_inputs}
    result = _call(stage, ctx, kwargs)
    absent = [o for o in stage.outputs if o not in result.outputs]
    if absent:
        raise StageError(
            f"stage {stage.name} promised {list(stage.outputs)}; did not return {absent}"
        )
    for name, schema_of in stage.schemas.items():
        check_schema(f"stage {stage.name} output {name}", result.outputs[name], schema_of(ctx))
    catalog.update(result.outputs)
    state.metrics[stage.name] = result.metrics
    state.params[stage.name] = result.params
    if result.report is not None:
        state.reports[stage.name] = result.report
    state.model_versions.update(result.model_versions)
    state.artifacts.update(result.artifacts)
    del result, kwargs
    release_freed()
    state.timings[stage.name] = round(time.perf_counter() - t, 3)
    progress(stage.name, "done", state.timings[stage.name])


def check_schema(what: str, frame: pl.DataFrame | pl.LazyFrame, expected: pl.Schema) -> None:
    """Raise `StageError` naming the missing, unexpected and mistyped columns of ``frame``."""
    schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    difference = schema_difference(schema, expected)
    if difference is not None:
        raise StageError(f"{what} does not match its declared schema: {difference}")


def _call(stage: Stage, ctx: StageContext, kwargs: dict[str, Any]) -> StageOutput:
    try:
        if not ctx.tracking:
            return stage.func(ctx, **kwargs)
        import mlflow

        from crm_engine import tracking as trk

        with trk.stage_run(stage.name):
            result = stage.func(ctx, **kwargs)
            trk.log_params(result.params)
            trk.log_metrics(result.metrics)
            for path in result.artifacts.values():
                if Path(path).is_file():
                    mlflow.log_artifact(str(path))
            return result
    except (DataError, StageError):
        raise
    except DEPENDENCY_ERRORS as e:  # a Polars panic too: one line, not a traceback
        raise StageError(f"stage {stage.name} failed: {type(e).__name__}: {e}") from e
