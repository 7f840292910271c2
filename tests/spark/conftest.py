"""One local Spark session (``local[2,2]``) for every Spark test, and the config of a Spark run."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_engine.config import PipelineConfig, load_config

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2024-10-01"
BUCKETS = 3
"""Few buckets: the 2,500-customer operator in three tasks (at least one customer each)."""


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """A ``local[2,2]`` session (two cores, a failed task tried twice) with four shuffle
    partitions and no UI, stopped at the end.

    Its Python workers run this interpreter with this checkout first on their path (the
    package is not installed on workers in a test run; on a cluster it must be).
    """
    pytest.importorskip("pyspark", reason="the Spark backend needs the spark extra")
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    session = (
        SparkSession.builder.master("local[2,2]")
        .appName("crm-engine-tests")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.log.level", "ERROR")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.executorEnv.PYTHONPATH", path)
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture
def spark_config(spark: object, generated_operator: Path, tmp_path: Path) -> PipelineConfig:
    """A run of the generated operator on the Spark backend (the session above is active, so
    the run uses it and leaves it running)."""
    return load_config(
        None,
        {
            "data.dir": str(generated_operator),
            "output.dir": str(tmp_path / "out"),
            "data.as_of": AS_OF,
            "engine.backend": "spark",
            "engine.spark.buckets": BUCKETS,
        },
    )
