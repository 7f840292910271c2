"""The Spark backend: point-in-time profiles computed on Apache Spark (``engine.backend``).

Importing this package does not import PySpark; the session is opened when the first profile
is asked for. A notebook passes its own session with :func:`pipelines.spark.session.use_session`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from crm_engine.config import FeaturesConfig, PipelineConfig
from features.sample import CustomerSample
from pipelines.spark.session import LazySession, SparkUnavailable, use_session

if TYPE_CHECKING:
    from pipelines.runner import ProfileBuilder

__all__ = ["SparkUnavailable", "spark_backend", "use_session"]


def spark_backend(cfg: PipelineConfig, stack: contextlib.ExitStack) -> ProfileBuilder:
    """The run's profile builder on Spark; the session is stopped when ``stack`` closes (the
    runner has checked that PySpark and Java are there: ``session.check_available``)."""
    spark_cfg = cfg.engine.spark
    session = LazySession(spark_cfg)
    stack.callback(session.stop)
    data_dir = Path(cfg.data.dir)

    def build(
        tables: dict[str, pl.LazyFrame],
        cut: dt.date,
        features_cfg: FeaturesConfig,
        sample: CustomerSample | None,
    ) -> pl.DataFrame:
        from pipelines.spark.profile import spark_profile

        return spark_profile(
            session.get(),
            data_dir,
            tables,
            cut,
            features_cfg,
            sample,
            buckets=spark_cfg.buckets,
            timezone=cfg.data.timezone,
        )

    return build
