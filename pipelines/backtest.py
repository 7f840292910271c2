"""Month over month: find the earlier committed runs of an output directory and check what each
said against what happened since (the backtest).

Every earlier committed run before the new as_of is checked, latest first, up to
``monitoring.backtest_max_runs`` (the chain is as long as ``output.keep_runs`` keeps it), one
at a time: only the compared columns of its ``scores.parquet`` are read, so memory is that of one
run's columns, never of the chain.

Only committed runs are read. A run's manifest names the run that was current when it was
committed (``previous_run_id``), so ``out/current`` and the chain of runs it names are exactly
the committed runs still kept: a run directory a killed run left behind (renamed into
``runs/`` but never made current) is named by no manifest, and staging directories
(``runs/.<id>.tmp``) are never looked at. A run is read only when its contract is this
engine's major version, its customer ids have the data's type, its ``scores.parquet`` (and
save-first list) still have the sha256 its manifest recorded and hold the columns compared;
otherwise it is skipped with one warning naming it, and the run before it is tried.

The comparisons themselves are pure functions over frames: :func:`churn.backtest.churn_backtest`
and :func:`valuation.backtest.value_backtest`, on the outcomes of
:func:`features.realised_outcomes`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from crm_engine.commit import RUNS_DIR, current_run
from crm_engine.config import FeaturesConfig
from crm_engine.contracts import SCORES_CONTRACT
from crm_engine.io import DataError
from crm_engine.scores import run_scores
from crm_engine.stage_reports import BacktestReport
from pipelines.manifest import changed_output
from pipelines.runner import StageContext, StageOutput

__all__ = [
    "PREVIOUS_RUN_KEY",
    "BacktestWarning",
    "CommittedRun",
    "backtest_history",
    "backtest_run",
    "backtest_stage",
    "committed_runs",
    "history_metrics",
    "run_features_config",
    "select_run",
    "select_runs",
]

PREVIOUS_RUN_KEY = "previous_run_id"
"""The manifest key naming the run that was current when a run was committed."""

SAVE_FIRST_FILE = "save_first.csv"


class BacktestWarning(UserWarning):
    """An earlier run was skipped by the backtest (the message names it and says why)."""


@dataclass(frozen=True)
class CommittedRun:
    """One committed run of an output directory: its directory and manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def run_id(self) -> str:
        """The run's id (``runs/<run_id>``)."""
        return str(self.manifest.get("run_id") or self.path.name)

    @property
    def as_of(self) -> dt.date:
        """The run's as_of."""
        return dt.date.fromisoformat(self.manifest["as_of"])

    def horizon_days(self, section: str) -> int:
        """``<section>.horizon_days`` of the run's resolved config (``churn``, ``valuation``)."""
        return int(self.manifest["config"][section]["horizon_days"])


def _read_manifest(run_dir: Path) -> dict[str, Any] | None:
    """The run's manifest, or None when it cannot be read or has no as_of date."""
    try:
        doc = json.loads((run_dir / "manifest.json").read_text())
        dt.date.fromisoformat(doc["as_of"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def committed_runs(out_dir: Path) -> Iterator[CommittedRun]:
    """The committed runs of ``out_dir``, latest first: ``out/current``, then the run its
    manifest names as ``previous_run_id``, and so on while that run's directory is kept.

    A manifest that cannot be read ends the chain with a :class:`BacktestWarning`; a run
    written before runs named their predecessor ends it quietly.
    """
    out_dir = Path(out_dir)
    head = current_run(out_dir)
    if head is None:
        return
    path: Path | None = head
    seen: set[str] = set()
    while path is not None:
        manifest = _read_manifest(path)
        if manifest is None:
            warnings.warn(
                f"backtest: {path / 'manifest.json'} cannot be read; earlier runs not checked",
                BacktestWarning,
                stacklevel=2,
            )
            return
        run = CommittedRun(path, manifest)
        if run.run_id in seen:  # a hand-edited manifest naming itself
            return
        seen.add(run.run_id)
        yield run
        previous = manifest.get(PREVIOUS_RUN_KEY)
        path = None
        if isinstance(previous, str) and previous and "/" not in previous:
            candidate = out_dir / RUNS_DIR / previous
            if candidate.is_dir() and not previous.startswith("."):
                path = candidate


def _unreadable(run: CommittedRun, id_dtype: pl.DataType) -> str | None:
    """Why ``run`` cannot be backtested (contract, horizons, checksums, id type, columns), or
    None."""
    contract = run.manifest.get("contract")
    if contract != SCORES_CONTRACT:
        return f"its scores contract is {contract!r}, this engine reads {SCORES_CONTRACT}"
    for section in ("churn", "valuation"):
        try:
            run.horizon_days(section)
        except (KeyError, TypeError, ValueError):
            return f"its manifest has no {section}.horizon_days"
    scores = run_scores(run.path)
    if scores is None:
        return "its scores are missing"
    for name in (scores.path.name, SAVE_FIRST_FILE):
        if name == SAVE_FIRST_FILE and not (run.path / name).is_file():
            continue
        problem = changed_output(run.path, name, run.manifest)
        if problem is not None:
            return problem
    stored = pl.scan_parquet(scores.files()).collect_schema()
    ids = stored.get("customer_id")
    if ids is None:
        return f"{scores.path.name} has no customer_id"
    if ids != id_dtype:
        return f"its customer ids are {ids}, the data's are {id_dtype}"
    missing = [c for c in _score_columns() if c not in stored]
    if missing:
        return f"{scores.path.name} has no {', '.join(missing)}"
    return None


def _score_columns() -> list[str]:
    """The ``crm.scores/v1`` columns the churn and value backtests read."""
    from churn.backtest import PREDICTED_COLUMNS as CHURN_COLUMNS
    from valuation.backtest import PREDICTED_COLUMNS as VALUE_COLUMNS

    return list(dict.fromkeys([*CHURN_COLUMNS, *VALUE_COLUMNS]))


def select_runs(
    out_dir: Path,
    as_of: dt.date,
    id_dtype: pl.DataType,
    max_runs: int,
    run_id: str | None = None,
) -> tuple[list[CommittedRun], list[dict[str, str]]]:
    """The committed runs of ``out_dir`` with an as_of before ``as_of`` that can be read, latest
    first and at most ``max_runs`` of them (or the committed run ``run_id`` alone), and the runs
    skipped on the way.

    Each skipped run gets one :class:`BacktestWarning` naming it and the reason; skipped runs do
    not count towards ``max_runs``. Runs as of ``as_of`` or later are passed over quietly.

    Raises
    ------
    DataError
        When ``run_id`` is not a committed run of ``out_dir``, or its as_of is not before
        ``as_of`` (nothing has happened since).
    ValueError
        When ``max_runs`` < 1.
    """
    if max_runs < 1:
        raise ValueError(f"max_runs={max_runs} should be >= 1")
    found: list[CommittedRun] = []
    skipped: list[dict[str, str]] = []
    seen: list[str] = []
    for run in committed_runs(out_dir):
        seen.append(run.run_id)
        if run_id is not None and run.run_id != run_id:
            continue
        if run.as_of >= as_of:
            if run_id is not None:
                raise DataError(
                    f"run {run_id} is as of {run.as_of}: nothing to check before {as_of} "
                    "(pass a later --as-of)"
                )
            continue
        reason = _unreadable(run, id_dtype)
        if reason is not None:
            warnings.warn(
                f"backtest: run {run.run_id} ({run.path}) skipped: {reason}",
                BacktestWarning,
                stacklevel=2,
            )
            skipped.append({"run_id": run.run_id, "reason": reason})
        else:
            found.append(run)
        if run_id is not None or len(found) >= max_runs:
            return found, skipped
    if run_id is not None:
        raise DataError(
            f"run {run_id} is not a committed run of {out_dir} (committed and kept: "
            f"{', '.join(seen) or 'none'})"
        )
    return found, skipped


def select_run(
    out_dir: Path,
    as_of: dt.date,
    id_dtype: pl.DataType,
    run_id: str | None = None,
) -> tuple[CommittedRun | None, list[dict[str, str]]]:
    """The most recent committed run of ``out_dir`` with an as_of before ``as_of`` that can be
    read (or the committed run ``run_id``), and the runs skipped on the way: :func:`select_runs`
    with one run.
    """
    found, skipped = select_runs(out_dir, as_of, id_dtype, 1, run_id)
    return (found[0] if found else None), skipped


def run_features_config(run: CommittedRun, default: FeaturesConfig) -> FeaturesConfig:
    """The ``features`` section of ``run``'s recorded config (its profile's columns and
    windows), or ``default`` when the manifest holds none that validates."""
    recorded = run.manifest.get("config", {})
    try:
        return FeaturesConfig.model_validate(recorded["features"])
    except (KeyError, TypeError, ValueError):
        return default


def backtest_run(
    run: CommittedRun,
    tables: dict[str, pl.LazyFrame],
    as_of: dt.date,
    skipped: list[dict[str, str]] | None = None,
) -> BacktestReport:
    """Check ``run``'s churn and value forecasts against the tables, which are known up to
    ``as_of`` (nothing on or after it is read).

    The churn window is ``[run.as_of, min(run.as_of + churn horizon, as_of))``, the revenue
    window the same with the CLV horizon; each says the share of its horizon that passed.
    """
    from churn.backtest import churn_backtest
    from features import realised_outcomes
    from valuation.backtest import value_backtest

    if run.as_of >= as_of:
        raise ValueError(f"run {run.run_id} is as of {run.as_of}, not before {as_of}")
    churn_days = run.horizon_days("churn")
    value_days = run.horizon_days("valuation")
    churn_end = min(run.as_of + dt.timedelta(days=churn_days), as_of)
    value_end = min(run.as_of + dt.timedelta(days=value_days), as_of)
    # Only the compared columns of the run's scores, and the outcomes of its customers alone:
    # one plan, collected once (memory: one run's columns, whatever the chain's length).
    scores_source = run_scores(run.path)
    if scores_source is None:  # checked by _unreadable; gone since
        raise DataError(f"run {run.run_id}: its scores are missing")
    scan = pl.scan_parquet(scores_source.files()).select(_score_columns())
    outcomes = realised_outcomes(
        tables["customers"], tables["transactions"], run.as_of, churn_end, value_end
    ).join(scan.select("customer_id"), on="customer_id", how="semi")
    scores, realised = pl.collect_all([scan, outcomes])
    not_found = scores.join(realised, on="customer_id", how="anti").height
    save_ids = None
    if (run.path / SAVE_FIRST_FILE).is_file():
        id_dtype = scores.schema["customer_id"]
        save_ids = pl.read_csv(
            run.path / SAVE_FIRST_FILE,
            columns=["customer_id"],
            schema_overrides={"customer_id": id_dtype},
        )["customer_id"]
    churn = churn_backtest(
        scores, realised, churn_days, (churn_end - run.as_of).days, save_list=save_ids
    )
    value = value_backtest(scores, realised, value_days, (value_end - run.as_of).days)
    return BacktestReport(
        run_id=run.run_id,
        as_of=run.as_of,
        checked_to=as_of,
        model_versions={str(k): str(v) for k, v in run.manifest.get("model_versions", {}).items()},
        churn=churn,
        value=value,
        not_found=not_found,
        skipped=list(skipped or []),
    )


def backtest_history(
    runs: list[CommittedRun],
    tables: dict[str, pl.LazyFrame],
    as_of: dt.date,
    skipped: list[dict[str, str]] | None = None,
) -> BacktestReport:
    """:func:`backtest_run` of each of ``runs`` (latest first), one at a time: the report of the
    first, with every run's own report in ``runs`` (``run_id`` None when there is none)."""
    passed = list(skipped or [])
    checked = [backtest_run(run, tables, as_of) for run in runs]
    if not checked:
        return BacktestReport(run_id=None, as_of=None, checked_to=as_of, skipped=passed)
    return dataclasses.replace(checked[0], skipped=passed, runs=checked)


HISTORY_PREFIX = "backtest.history."
"""The MLflow metrics of every earlier run checked: ``backtest.history.churn.roc_auc``, ..."""


def history_metrics(report: BacktestReport) -> list[tuple[int, int, dict[str, float]]]:
    """Each earlier run's metrics as MLflow points: ``(step, timestamp_ms, metrics)``.

    The names are those of :meth:`BacktestReport.metrics` under ``backtest.history.``
    (``backtest.history.churn.roc_auc``, ``backtest.history.value.prepaid.mae``, ...); the step
    is the run's age in days (from its as_of to this run's), the timestamp its as_of (midnight
    UTC), so one chart plots them against the forecasts' age, or against the month they were
    made ("wall time"). NaN values are left out.
    """
    points = []
    for r in report.runs:
        if r.as_of is None or r.days_since is None:
            continue
        when = dt.datetime.combine(r.as_of, dt.time(), tzinfo=dt.UTC)
        values = {
            HISTORY_PREFIX + k.removeprefix("backtest."): float(v)
            for k, v in r.metrics().items()
            if k != "backtest.skipped_runs" and math.isfinite(v)
        }
        points.append((r.days_since, int(when.timestamp() * 1000), values))
    return points


def _log_history(report: BacktestReport) -> None:
    """The earlier runs' metrics into the active (the stage's) MLflow run, one step each."""
    from crm_engine import tracking as trk

    for step, timestamp, values in history_metrics(report):
        trk.log_metrics(values, step=step, timestamp=timestamp)


def backtest_stage(ctx: StageContext, tables: dict[str, pl.LazyFrame]) -> StageOutput:
    """The run's backtest of every earlier committed run before its as_of, latest first (at
    most ``monitoring.backtest_max_runs``; nothing without a run output directory or an earlier
    run).

    Metrics: the most recent run's ``backtest.churn.roc_auc``, ... (one point per run of the
    pipeline) and ``backtest.runs_checked``; with tracking, every run's under
    ``backtest.history.`` (see :func:`history_metrics`).
    """
    if ctx.output_dir is None:
        return StageOutput(outputs={})
    runs, skipped = select_runs(
        ctx.output_dir, ctx.as_of, ctx.id_dtype, ctx.cfg.monitoring.backtest_max_runs
    )
    if not runs and not skipped:
        return StageOutput(outputs={})
    report = backtest_history(runs, tables, ctx.as_of, skipped)
    if ctx.tracking:
        _log_history(report)
    params = {
        "backtest.run_id": report.run_id or "",
        "backtest.as_of": str(report.as_of or ""),
        "backtest.runs": ",".join(f"{r.run_id}@{r.as_of}" for r in report.runs),
    }
    metrics = report.metrics()
    if runs:
        metrics["backtest.runs_checked"] = float(len(runs))
    return StageOutput(outputs={}, metrics=metrics, params=params, report=report)
