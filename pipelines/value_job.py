"""Value job: profile at as_of, holdout and model selection, CLV values, atomic writes."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from crm_engine.config import PipelineConfig, ValuationConfig
from crm_engine.io import DataError, load_tables, write_parquet_atomic
from valuation import (
    AUTO_CANDIDATES,
    ValuationError,
    ValuationModels,
    fit_models,
    value_customers,
)
from valuation.holdout import HoldoutResult, holdout_validation, plot_holdout, purchase_days

if TYPE_CHECKING:
    from pipelines.runner import StageContext, StageOutput

__all__ = [
    "VALUES_CONTRACT",
    "ValuationRun",
    "ValueJobResult",
    "run_valuation",
    "valuation_stage",
    "value_job",
]

VALUES_CONTRACT = "crm.values/v1"
CLV_MODEL_NAME = "crm-clv"


@dataclass
class ValuationRun:
    """Everything one valuation produced (frames and aggregates; nothing written)."""

    values: pl.DataFrame
    report: dict[str, Any]
    models: ValuationModels
    holdout: HoldoutResult | None


def _profile_at(tables: dict[str, pl.LazyFrame], cfg: PipelineConfig) -> Any:
    import features

    def build(cut: dt.date) -> pl.DataFrame:
        return features.build_profile(tables, cut, cfg.features).collect(engine="streaming")

    return build


def run_valuation(
    tables: dict[str, pl.LazyFrame],
    profile: pl.DataFrame,
    as_of: dt.date,
    cfg: PipelineConfig,
    profile_at: Callable[[dt.date], pl.DataFrame] | None = None,
) -> ValuationRun:
    """Validate on a holdout (selecting the model when ``valuation.model = "auto"``), then
    fit on ``profile`` (at ``as_of``) and score every customer.

    The holdout refits with the cut moved back by ``valuation.holdout_days`` and compares
    with the purchases that really happened up to ``as_of``; ``holdout_days = 0`` skips it
    (not allowed with ``auto``). ``profile_at`` builds the profile at a cut (the pipeline
    passes its per-run cache, so a cut other stages also need is built once).

    Raises
    ------
    ValuationError
        ``auto`` without a holdout, or no model can be fitted.
    """
    vcfg: ValuationConfig = cfg.valuation
    holdout: HoldoutResult | None = None
    holdout_error: str | None = None
    model_name = vcfg.model
    if vcfg.holdout_days > 0:
        candidates = AUTO_CANDIDATES if vcfg.model == "auto" else (vcfg.model,)
        try:
            holdout = holdout_validation(
                profile_at or _profile_at(tables, cfg),
                lambda start, days: purchase_days(tables["transactions"], start, days).collect(),
                as_of,
                vcfg,
                models=candidates,
            )
        except ValuationError as e:
            if vcfg.model == "auto":
                raise
            holdout_error = str(e)
        if vcfg.model == "auto" and holdout is not None:
            model_name = holdout.best
    elif vcfg.model == "auto":
        raise ValuationError(
            "valuation.model='auto' selects on a holdout: set valuation.holdout_days > 0"
        )
    models = fit_models(profile, vcfg, model_name)
    values, report = value_customers(profile, vcfg, models)
    report["as_of"] = as_of.isoformat()
    report["model_requested"] = vcfg.model
    report["holdout"] = holdout.to_dict() if holdout is not None else None
    if holdout_error is not None:
        report["holdout_error"] = holdout_error
    return ValuationRun(values=values, report=report, models=models, holdout=holdout)


@dataclass
class ValueJobResult:
    """Paths written by :func:`value_job` and the run's report."""

    values_path: Path
    report_path: Path
    plot_path: Path | None
    rows: int
    report: dict[str, Any]


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, sort_keys=False, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def value_job(
    data_dir: Path,
    as_of: dt.date,
    out: Path,
    cfg: PipelineConfig,
) -> ValueJobResult:
    """Read the tables, value every customer at ``as_of`` and write the results.

    Writes ``out`` (Parquet, one row per customer, contract ``crm.values/v1`` in the
    metadata), ``valuation.json`` beside it (model, parameters, holdout metrics: no
    customer rows) and, after a holdout, ``valuation_holdout.png``. Each file is written
    to a temporary name and renamed, and nothing is written when the valuation fails.

    Raises
    ------
    DataError
        Missing tables.
    ValuationError
        A model that cannot be fitted.
    """
    import features

    data_dir, out = Path(data_dir), Path(out)
    tables = load_tables(data_dir)
    missing = [t for t in ("customers", "transactions") if t not in tables]
    if missing:
        raise DataError(f"{data_dir}: required table(s) {missing} not found")
    profile = features.build_profile(tables, as_of, cfg.features).collect(engine="streaming")
    run = run_valuation(tables, profile, as_of, cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_path = None
    if run.holdout is not None and any(m is not None for m in run.holdout.metrics.values()):
        plot_path = out.parent / "valuation_holdout.png"
        tmp_png = plot_holdout(run.holdout, out.parent / ".valuation_holdout.png.tmp.png")
        os.replace(tmp_png, plot_path)
        run.report["holdout_plot"] = plot_path.name
    write_parquet_atomic(
        run.values,
        out,
        metadata={
            "crm.contract": VALUES_CONTRACT,
            "crm.as_of": as_of.isoformat(),
            "crm.valuation.model": run.report["model"],
        },
    )
    report_path = out.parent / "valuation.json"
    _write_json_atomic(report_path, run.report)
    return ValueJobResult(
        values_path=out,
        report_path=report_path,
        plot_path=plot_path,
        rows=run.values.height,
        report=run.report,
    )


def valuation_stage(
    ctx: StageContext, tables: dict[str, pl.LazyFrame], profile: pl.DataFrame
) -> StageOutput:
    """Pipeline stage: holdout, fit, score; outputs ``values``.

    Logs the CLV pyfunc model (registered as ``crm-clv`` when
    ``mlflow.register_models``) inside the runner's nested run when ``ctx.tracking``.
    """
    from pipelines.runner import StageOutput

    run = run_valuation(tables, profile, ctx.as_of, ctx.cfg, profile_at=ctx.profile_at)
    artifacts: dict[str, Path] = {}
    if run.holdout is not None and any(m is not None for m in run.holdout.metrics.values()):
        artifacts["valuation_holdout.png"] = plot_holdout(
            run.holdout, ctx.workdir / "valuation" / "valuation_holdout.png"
        )
    versions: dict[str, str] = {}
    if ctx.tracking:
        from valuation.pyfunc import log_valuation_model

        reg = ctx.cfg.mlflow.register_models
        info = log_valuation_model(
            run.models.purchase,
            run.models.spend,
            ctx.cfg.valuation,
            registered_model_name=CLV_MODEL_NAME if reg else None,
        )
        versions["clv"] = str(info.registered_model_version or info.model_uri)
    metrics: dict[str, Any] = {
        "valuation.log_likelihood": run.report["log_likelihood"],
        "valuation.total_clv": run.report["total_clv"],
        "valuation.mean_p_alive": run.report["mean_p_alive"],
    }
    if run.holdout is not None:
        for name, m in run.holdout.metrics.items():
            if m is not None:
                metrics[f"valuation.holdout.{name}.mae"] = m["mae"]
    params = {f"valuation.{k}": v for k, v in run.report["params"].items()}
    params["valuation.model"] = run.report["model"]
    return StageOutput(
        outputs={"values": run.values},
        metrics=metrics,
        params=params,
        report=run.report,
        artifacts=artifacts,
        model_versions=versions,
    )
