"""The Spark session of a run: found, or opened when first needed, and stopped if ours.

PySpark is imported here and in the other modules of :mod:`pipelines.spark` only, inside
functions: the local backend never imports it.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from crm_engine.config import ConfigError, SparkConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "LazySession",
    "SparkUnavailable",
    "check_available",
    "local_shuffle_partitions",
    "use_session",
]

INSTALL_HINT = "pip install 'crm-engine[spark]'"

_PROVIDED: SparkSession | None = None

# PySpark warns on every Arrow UDF that it does not fully support pandas 3; the backend
# exchanges Arrow only (no pandas), so the warning says nothing about this run.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)


class SparkUnavailable(ConfigError):
    """``engine.backend = "spark"`` cannot run here: PySpark or Java is missing, or the session
    did not start. The message names what failed."""


def local_shuffle_partitions(master: str) -> int:
    """Shuffle partitions for a ``local[N]`` master: 4 per core (``local[*]``: this machine's
    cores; ``local``: one)."""
    inside = master[len("local") :].strip("[]").split(",")[0]
    if inside in ("", "1"):
        cores = 1
    elif inside == "*":
        cores = os.cpu_count() or 1
    else:
        try:
            cores = max(1, int(inside))
        except ValueError:
            cores = os.cpu_count() or 1
    return 4 * cores


def use_session(spark: SparkSession | None) -> None:
    """Run the Spark backend on ``spark`` (a notebook's session, e.g. on Databricks).

    ``engine.spark.master``, ``app_name`` and ``conf`` are then not used, and the session is
    left running at the end of a run. ``None`` forgets it.
    """
    global _PROVIDED
    _PROVIDED = spark


def _java_problem() -> str | None:
    """Why no Java can be launched, or None when one is there (``JAVA_HOME``, else ``PATH``)."""
    home = os.environ.get("JAVA_HOME")
    if home:
        if (Path(home) / "bin" / "java").is_file():
            return None
        return f"JAVA_HOME={home} has no bin/java"
    if shutil.which("java") is None:
        return "no java on PATH and JAVA_HOME is not set"
    return None


def check_available(cfg: SparkConfig) -> None:
    """Fail fast, before a run writes anything, when the Spark backend cannot start.

    Raises
    ------
    SparkUnavailable
        When PySpark cannot be imported, or (without a session passed to :func:`use_session`
        and for a classic, non-Connect master) when no Java can be found.
    """
    try:
        import pyspark
        import pyspark.sql  # noqa: F401
    except ImportError as e:
        raise SparkUnavailable(
            f"engine.backend = 'spark' needs PySpark, which cannot be imported ({e}): "
            f"{INSTALL_HINT}"
        ) from None
    if _PROVIDED is not None or cfg.master.startswith("sc://"):
        return  # a running session, or Spark Connect: no local JVM is started
    problem = _java_problem()
    if problem is not None:
        raise SparkUnavailable(
            f"engine.backend = 'spark' needs Java 17+ to start Spark (master {cfg.master}): "
            f"{problem}"
        )


class LazySession:
    """The run's Spark session, opened on first :meth:`get` and stopped by :meth:`stop` only
    when this object started it (a session passed to :func:`use_session`, or one already
    active in the process, is left running).

    Whether PySpark and Java are there is checked once, by the runner before the run reads
    anything (:func:`check_available`), not again here.
    """

    def __init__(self, cfg: SparkConfig) -> None:
        self.cfg = cfg
        self._session: SparkSession | None = None
        self._owned = False

    def get(self) -> SparkSession:
        """The session (opened now if needed).

        Raises
        ------
        SparkUnavailable
            When the session does not start.
        """
        if self._session is not None:
            return self._session
        if _PROVIDED is not None:
            self._session = _PROVIDED
            return self._session
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            self._session = active
            return active
        cfg = self.cfg
        builder = SparkSession.builder.appName(cfg.app_name)
        if cfg.master.startswith("sc://"):
            builder = builder.remote(cfg.master)
        else:
            builder = builder.master(cfg.master)
        # the profile's timestamps are naive wall-clock times: no session zone shifts them
        builder = builder.config("spark.sql.session.timeZone", "UTC")
        # a batch job's terminal: no progress bars over the stage display, and nothing logged
        # below FATAL (a failed job is reported as one line by the backend); conf below may
        # change both ("spark.log.level" = "ERROR" shows the executors' errors). FATAL, not
        # ERROR: a task retried after its Python worker died logs ~100 lines of Java stack
        # traces from the executors in this JVM (local[...]) in a run that succeeds.
        builder = builder.config("spark.ui.showConsoleProgress", "false")
        if cfg.master.startswith("local"):
            # the driver's JVM starts with that logging (pipelines/spark/log4j2.properties),
            # so Spark's start-up warnings stay off the terminal too
            logging = Path(__file__).with_name("log4j2.properties")
            builder = builder.config(
                "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={logging.as_uri()}"
            )
        else:  # a cluster's driver logs as the cluster says, from FATAL up once started
            builder = builder.config("spark.log.level", "FATAL")
        if cfg.master.startswith("local") and not os.environ.get("PYSPARK_PYTHON"):
            # workers on this machine run this interpreter (its polars, its crm-engine), not
            # whichever python3 is first on PATH (PySpark reads only the environment variable)
            os.environ["PYSPARK_PYTHON"] = sys.executable
        if cfg.master.startswith("local"):
            # Spark's 200 shuffle partitions are sized for a cluster: on one machine every
            # join and group-by of the 20 PageRank steps then runs 200 tiny tasks (at 100,000
            # customers, local[2]: 65 s of PageRank against 27 s with 8). conf may override.
            builder = builder.config(
                "spark.sql.shuffle.partitions", str(local_shuffle_partitions(cfg.master))
            )
        for key, value in cfg.conf.items():
            builder = builder.config(key, value)
        try:
            self._session = builder.getOrCreate()
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SparkUnavailable(
                f"the Spark session (master {cfg.master}) did not start: {first}"
            ) from None
        self._owned = True
        return self._session

    def stop(self) -> None:
        """Stop the session if this object started it."""
        if self._session is not None and self._owned:
            self._session.stop()
        self._session = None
        self._owned = False
