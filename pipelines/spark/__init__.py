"""The Spark backend: point-in-time profiles computed on Apache Spark (``engine.backend``).

Importing this package does not import PySpark; the session is opened when the first profile
is asked for. A notebook passes its own session with :func:`pipelines.spark.session.use_session`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from crm_engine.config import FeaturesConfig, PipelineConfig
from features.sample import CustomerSample
from pipelines.spark.session import LazySession, SparkUnavailable, use_session

if TYPE_CHECKING:
    from pipelines.spark.influence import SparkCallGraph

__all__ = ["SparkProfiles", "SparkUnavailable", "spark_backend", "use_session"]


class SparkProfiles:
    """The run's profile builder on Spark (a ``ProfileBuilder``): each profile computed by
    :func:`pipelines.spark.profile.spark_profile`, the call-graph columns from one graph a run
    (:func:`pipelines.spark.profile.call_graph`, its files under ``scratch``), the cuts a stage
    expects (:meth:`expect`) computed together.

    Parameters
    ----------
    cfg
        The run's config (``engine.spark``, ``data.dir``, ``data.timezone``).
    session
        The run's session, opened when the first profile is asked for.
    scratch
        A directory of the run's staging area for the call graph's files.
    """

    def __init__(self, cfg: PipelineConfig, session: LazySession, scratch: Path) -> None:
        self._cfg = cfg
        self._session = session
        self._scratch = scratch
        self._graph: SparkCallGraph | None = None

    def _call_graph(self, tables: dict[str, pl.LazyFrame]) -> SparkCallGraph | None:
        from pipelines.spark.profile import call_graph

        if "calls" not in tables:
            return None
        if self._graph is None:
            data_dir = Path(self._cfg.data.dir)
            self._graph = call_graph(
                self._session.get(), data_dir, tables, self._scratch, self._cfg.data.timezone
            )
        return self._graph

    def expect(
        self, tables: dict[str, pl.LazyFrame], cuts: Sequence[dt.date], cfg: FeaturesConfig
    ) -> None:
        """Compute the call-graph columns of ``cuts`` together (one PageRank for all)."""
        from pipelines.spark.profile import expect_cuts

        graph = self._call_graph(tables)
        if graph is not None and cuts:
            expect_cuts(graph, cuts, cfg)

    def __call__(
        self,
        tables: dict[str, pl.LazyFrame],
        cut: dt.date,
        features_cfg: FeaturesConfig,
        sample: CustomerSample | None,
    ) -> pl.DataFrame:
        from pipelines.spark.profile import spark_profile

        spark_cfg = self._cfg.engine.spark
        return spark_profile(
            self._session.get(),
            Path(self._cfg.data.dir),
            tables,
            cut,
            features_cfg,
            sample,
            buckets=spark_cfg.buckets,
            timezone=self._cfg.data.timezone,
            graph=self._call_graph(tables),
        )


def spark_backend(cfg: PipelineConfig, stack: contextlib.ExitStack, scratch: Path) -> SparkProfiles:
    """The run's profile builder on Spark; the session is stopped when ``stack`` closes (the
    runner has checked that PySpark and Java are there: ``session.check_available``), the
    call graph's files go to ``scratch``."""
    session = LazySession(cfg.engine.spark)
    stack.callback(session.stop)
    return SparkProfiles(cfg, session, scratch)
