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
import socket
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from mlflow.entities import Run

    from crm_engine.config import MlflowConfig

T = TypeVar("T")

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


EMBEDDED_ARTIFACTS = "mlartifacts"
"""The artifact folder of an embedded store, beside its ``mlflow.db``."""

_LOCATION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)
"""Where an MLflow database records absolute artifact locations."""


def relocate_embedded_store(db: Path) -> str | None:
    """Make a copied or moved embedded store use the artifacts beside it; returns the old root.

    MLflow records absolute ``file://`` artifact locations, so a copy of an output directory
    would log into, and load models from, the original's ``mlartifacts``. When the store's
    experiments point at a ``mlartifacts`` folder that is not the one beside ``db``, every
    recorded location under it is rewritten to the folder beside ``db`` (one transaction).
    None when nothing needed to change.
    """
    import sqlite3

    if not db.is_file():
        return None
    here = (db.parent.resolve() / EMBEDDED_ARTIFACTS).as_uri()
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
        if "experiments" not in tables:
            return None
        roots = {
            loc
            for (loc,) in con.execute("select artifact_location from experiments")
            if loc and loc.startswith("file://") and loc.endswith(f"/{EMBEDDED_ARTIFACTS}")
        }
        old = next((r for r in sorted(roots) if r != here), None)
        if old is None:
            return None
        for table, column in _LOCATION_COLUMNS:
            if table not in tables:
                continue
            if column not in {r[1] for r in con.execute(f"pragma table_info({table})")}:
                continue
            con.execute(
                f"update {table} set {column} = ? || substr({column}, ?) "
                f"where {column} = ? or substr({column}, 1, ?) = ?",
                (here, len(old) + 1, old, len(old) + 1, old + "/"),
            )
    return old


def _configure(cfg: MlflowConfig, uri: str) -> str:
    import mlflow

    if uri.startswith("sqlite:///"):
        relocate_embedded_store(Path(uri.removeprefix("sqlite:///")))
    users = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    # MLflow also exports the URI to the environment, where the next run in this process (a
    # library user's second run, a test's) read it as the user's choice and logged into this
    # run's store instead of its own: the environment keeps what the user set.
    if users is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = users
    if uri.startswith("sqlite:///"):
        # Artifacts of an embedded store live beside the database, not in the working directory.
        artifacts = Path(uri.removeprefix("sqlite:///")).parent / EMBEDDED_ARTIFACTS
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


def log_metrics(
    metrics: Mapping[str, Any], step: int | None = None, timestamp: int | None = None
) -> None:
    """Log every finite number in a (nested) dict; skip text, lists and NaN.

    ``step`` and ``timestamp`` (milliseconds since the epoch) place the points on a metric's
    history (default: step 0, now).
    """
    import mlflow

    clean = {}
    for k, v in flatten(metrics).items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if math.isfinite(float(v)):
            clean[_metric_key(k)] = float(v)
    if clean:
        mlflow.log_metrics(clean, step=step, timestamp=timestamp)


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


def process_tags() -> dict[str, str]:
    """Which process a run belongs to: host, pid and the pid's start time (a reused pid is
    another process)."""
    import psutil

    me = psutil.Process()
    return {
        "crm.host": socket.gethostname(),
        "crm.pid": str(me.pid),
        "crm.process_started": f"{me.create_time():.3f}",
    }


def _process_alive(tags: Mapping[str, str]) -> bool:
    import psutil

    try:
        proc = psutil.Process(int(tags["crm.pid"]))
        started = float(tags["crm.process_started"])
        return abs(proc.create_time() - started) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except (KeyError, ValueError, psutil.Error):
        return False


def fail_abandoned_runs(experiment: str) -> list[str]:
    """End FAILED the RUNNING runs of ``experiment`` whose process, on this host, is dead.

    A run killed with SIGKILL (or by a power cut) cannot end its own MLflow runs; the next run
    does, so no run stays RUNNING for ever. Runs of other hosts, and of live processes, are
    left alone. Returns the parent run ids ended.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    host = socket.gethostname().replace("'", "")
    running = client.search_runs(
        [exp.experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`crm.host` = '{host}'",
        max_results=1000,
    )
    ended = []
    for run in running:
        if _process_alive(run.data.tags):
            continue
        children = client.search_runs(
            [exp.experiment_id],
            filter_string=(
                f"attributes.status = 'RUNNING' and tags.mlflow.parentRunId = '{run.info.run_id}'"
            ),
            max_results=1000,
        )
        for child in children:
            client.set_terminated(child.info.run_id, "FAILED")
        client.set_tag(run.info.run_id, "crm.ended_by", "a later run: its process had died")
        client.set_terminated(run.info.run_id, "FAILED")
        ended.append(run.info.run_id)
    return ended


@contextlib.contextmanager
def parent_run(name: str, tags: Mapping[str, str] | None = None) -> Iterator[Run]:
    """The pipeline's parent run, tagged with the process that runs it (see
    :func:`fail_abandoned_runs`); it ends FAILED when the block raises."""
    import mlflow

    with mlflow.start_run(run_name=name, tags={**process_tags(), **dict(tags or {})}) as run:
        yield run


@contextlib.contextmanager
def stage_run(stage: str) -> Iterator[Run]:
    """A nested run for one stage, under the active parent run."""
    import mlflow

    with mlflow.start_run(run_name=stage, nested=True, tags={"crm.stage": stage}) as run:
        yield run


def pinned(*dists: str) -> list[str]:
    """A logged model's ``pip_requirements``: ``name==version`` of each of ``dists`` installed
    here (one that is not is left out)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in dists:
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out


def model_artifact(model_uri: str, key: str, dst: Path) -> Path:
    """The local copy of artifact ``key`` of a logged pyfunc model, to be read as data.

    The model directory is downloaded into ``dst`` and only its ``MLmodel`` file is parsed
    (``mlflow.models.Model.load``, YAML): the model's code, its pyfunc loader or
    models-from-code entry file, is never imported or run, so a store that was written to
    cannot make scoring run code.

    Raises
    ------
    DataError
        When the model has no such artifact (not a crm-engine model), or its path leads out of
        the model directory.
    """
    from mlflow.artifacts import download_artifacts
    from mlflow.models import Model

    from crm_engine.io import DataError

    local = Path(download_artifacts(artifact_uri=model_uri, dst_path=str(dst))).resolve()
    try:
        spec = Model.load(str(local)).flavors["python_function"]["artifacts"][key]
        path = (local / spec["path"]).resolve()
    except (KeyError, TypeError) as e:
        raise DataError(
            f"model {model_uri} holds no {key!r} artifact ({type(e).__name__}: {e}): not a "
            "model this crm-engine logged"
        ) from None
    if not path.is_relative_to(local) or not path.exists():
        raise DataError(f"model {model_uri}: artifact {key!r} is not inside the model: refused")
    return path


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


def require_registered(model: str, uri: str | None = None) -> str:
    """``uri``, or the latest registered version of a pipeline model."""
    from crm_engine.io import DataError

    found = uri or registered_model_uri(model)
    if found is None:
        raise DataError(
            f"no registered model {REGISTERED_MODELS[model]!r} in the tracking store: train it "
            "first (crm-engine run, or crm-engine churn train, with mlflow.register_models = "
            "true) or pass a model URI"
        )
    return found


def load_registered(uri: str, loader: Callable[[str], T]) -> T:
    """A registered model, or a one-line `DataError` naming the URI and the store searched."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from crm_engine.io import DataError

    try:
        return loader(uri)
    except DataError:
        raise
    except (MlflowException, OSError, ValueError, KeyError) as e:
        raise DataError(
            f"model {uri} could not be loaded from the tracking store "
            f"{mlflow.get_tracking_uri()} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "check the URI, or point at another store with --tracking-uri or [mlflow] "
            "tracking_uri"
        ) from None


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
