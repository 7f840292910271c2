"""MLflow helpers: where runs go, one parent run per pipeline run, a nested run per stage.

`mlflow` is imported lazily (it costs ~1.5 s), so the CLI stays quick for commands that do not
track anything. Only parameters, metrics and aggregate artifacts are logged: never customer rows.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.entities import Run

    from crm_engine.config import MlflowConfig


REGISTERED_MODELS: dict[str, str] = {
    "segmentation": "crm-segmentation",
    "clv": "crm-clv",
    "churn": "crm-churn",
    "loyalty": "crm-loyalty",
}
"""Registry name of each model the pipeline registers (``mlflow.register_models``)."""


def resolve_tracking_uri(cfg: MlflowConfig, output_dir: Path) -> str:
    """Config wins, then ``MLFLOW_TRACKING_URI``, then sqlite in the output directory.

    The one resolver: every command (``run``, ``churn train``, ``churn score``) passes the
    configured output directory (``output.dir``), so they all find the same embedded store.
    """
    if cfg.tracking_uri:
        return cfg.tracking_uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"


def require_store(cfg: MlflowConfig, output_dir: Path) -> str:
    """The tracking URI of a store that must already exist (scoring with registered models).

    Raises
    ------
    DataError
        When the default embedded store is not there: nothing is created, and the message
        says which store was searched and how to point at another.
    """
    from crm_engine.io import DataError

    uri = resolve_tracking_uri(cfg, output_dir)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise DataError(
            f"no tracking store at {uri}, so no registered models to score with: point --out "
            "(or output.dir) at the output directory of a training run, or set [mlflow] "
            "tracking_uri / MLFLOW_TRACKING_URI (churn score: --tracking-uri)"
        )
    return uri


HTTP_TIMEOUT_S = "10"
HTTP_RETRIES = "1"
"""A tracking server that does not answer fails the run in about 30 s, not after minutes of
MLflow's default retries (a user's MLFLOW_HTTP_REQUEST_* settings win)."""


class TrackingError(RuntimeError):
    """The tracking store cannot be used; names the URI and what failed."""


def configure(cfg: MlflowConfig, output_dir: Path) -> str:
    """Point MLflow at the resolved store and experiment; return the tracking URI.

    Raises
    ------
    TrackingError
        When the store does not answer or refuses (the message names the URI).
    """
    uri = resolve_tracking_uri(cfg, output_dir)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", HTTP_TIMEOUT_S)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", HTTP_RETRIES)
    try:
        return _configure(cfg, uri)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise TrackingError(
            f"tracking store {uri} cannot be used: {type(e).__name__}: {first[:300]}"
        ) from e


def _configure(cfg: MlflowConfig, uri: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        # Artifacts of an embedded store live beside the database, not in the working directory.
        artifacts = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"
        if mlflow.get_experiment_by_name(cfg.experiment) is None:
            mlflow.create_experiment(cfg.experiment, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(cfg.experiment)
    return uri


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to ``a.b.c`` keys (MLflow params and metrics are flat)."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def log_metrics(metrics: Mapping[str, Any]) -> None:
    """Log every finite number in a (nested) dict; skip text, lists and NaN."""
    import mlflow

    clean = {}
    for k, v in flatten(metrics).items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if math.isfinite(float(v)):
            clean[_metric_key(k)] = float(v)
    if clean:
        mlflow.log_metrics(clean)


def log_params(params: Mapping[str, Any]) -> None:
    """Log a (nested) dict of parameters as strings (MLflow caps values at 6000 chars)."""
    import mlflow

    flat = {_metric_key(k): str(v)[:6000] for k, v in flatten(params).items()}
    if flat:
        mlflow.log_params(flat)


def _metric_key(key: str) -> str:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./ ")
    return "".join(ch if ch in allowed else "_" for ch in key)[:250]


_log = logging.getLogger("crm_engine.mlflow")
_MLFLOW_ADVICE = re.compile(r"type hint|Operation with range|mlflow", re.IGNORECASE)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """MLflow's advisory chatter goes to the debug log (``crm_engine.mlflow``), not the terminal.

    Database-init lines, input-example and cloudpickle notices, "Successfully registered
    model" lines and MLflow's UserWarnings are captured; our own warnings still reach stderr.
    """
    import mlflow  # noqa: F401  (its import configures its loggers: set ours after it)

    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    terminal = sys.stderr
    captured = io.StringIO()

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        text = warnings.formatwarning(message, category, filename, lineno, line)
        if "mlflow" in str(filename) or _MLFLOW_ADVICE.search(str(message)):
            _log.debug("MLflow warned: %s", text.strip())  # MLflow may force its warnings on
        else:
            terminal.write(text)

    with warnings.catch_warnings():
        warnings.showwarning = show
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\..*)?")
        warnings.filterwarnings("ignore", message=r".*(type hint|Operation with range).*")
        try:
            with contextlib.redirect_stderr(captured):
                yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)
            if captured.getvalue().strip():
                _log.debug("MLflow said: %s", captured.getvalue().strip())


@contextlib.contextmanager
def parent_run(name: str, tags: Mapping[str, str] | None = None) -> Iterator[Run]:
    """The pipeline's parent run."""
    import mlflow

    with mlflow.start_run(run_name=name, tags=dict(tags or {})) as run:
        yield run


@contextlib.contextmanager
def stage_run(stage: str) -> Iterator[Run]:
    """A nested run for one stage, under the active parent run."""
    import mlflow

    with mlflow.start_run(run_name=stage, nested=True, tags={"crm.stage": stage}) as run:
        yield run


CHAMPION = "champion"
"""Registry alias of the models of the last committed run: what scoring from the registry uses."""


def registered_model_uri(model: str) -> str | None:
    """``models:/<name>/<version>`` of a pipeline model's ``@champion``, or None when none.

    ``model`` is a key of :data:`REGISTERED_MODELS` (``"churn"``, ``"clv"``, ...). The alias
    moves only when a run's outputs are committed (:func:`promote`), so versions a failed or
    killed run registered are never picked up; the version is resolved so that the manifest
    says exactly which model scored.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = REGISTERED_MODELS[model]
    try:
        version = MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    return f"models:/{name}/{version.version}"


def promote(model_versions: Mapping[str, str]) -> None:
    """Point ``@champion`` of each pipeline model at the version this run registered.

    ``model_versions`` is the run's ``{model: version}``; entries that are not a registered
    version of this run (model URIs of ``--score-only``, unregistered run URIs) are skipped.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    for model, version in model_versions.items():
        if model in REGISTERED_MODELS and str(version).isdigit():
            client.set_registered_model_alias(REGISTERED_MODELS[model], CHAMPION, str(version))
