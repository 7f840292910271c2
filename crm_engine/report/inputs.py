"""What the report is rendered from, and the checks every section shares."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from crm_engine.parts import Parts, count_rows
from crm_engine.report.views import SAVE_FIRST_ROWS, Scores, as_parts
from crm_engine.stage_reports import (
    BacktestReport,
    ChurnReport,
    DriftReport,
    PopulationReport,
    ValuationReport,
)


@dataclass(frozen=True)
class Logged:
    """What one stage logged to its MLflow run (the appendix shows it as is)."""

    metrics: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ReportInputs:
    """Everything the report shows; stage reports are optional (a skipped stage says so).

    ``scores`` may be a frame or parts of everyone where they lie (:mod:`crm_engine.parts`):
    the sections read aggregates of them (counts, sums, bins, a top few), never every row.
    """

    scores: Scores
    as_of: dt.date
    run_id: str
    segment_profiles: pl.DataFrame | None = None
    migration: pl.DataFrame | None = None
    valuation: ValuationReport | None = None
    churn: ChurnReport | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)
    images: dict[str, Path] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    customer_rows: bool = True
    """False leaves out the per-customer "save first" table (the copy logged to MLflow)."""
    population: PopulationReport | None = None
    """Customers in the input and why some are not scored (the profile stage's report)."""
    currency: str | None = None
    """``output.currency``: shown in every money title; None shows "units"."""
    save_first_file: str | None = None
    """Name of the save-first CSV written beside the report (linked when ``customer_rows``)."""
    save_first_rows: int = SAVE_FIRST_ROWS
    """How many customers that CSV lists."""
    age_bands: Sequence[int] | None = None
    """``features.age_bands``: the cut points the age axis is ordered by (None: the default)."""
    backtest: BacktestReport | None = None
    """The last committed run's forecasts against what happened since (None: no earlier run)."""
    drift: DriftReport | None = None
    """What moved under the models since the last committed run (None: not measured)."""
    logged: Mapping[str, Logged] = field(default_factory=dict)
    """Per stage that ran, what it logged to MLflow (the appendix)."""

    _memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _memoised(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, once per ``scores`` (a caller may set other scores afterwards)."""
        if self._memo.get("scores") is not self.scores:
            self._memo.clear()
            self._memo["scores"] = self.scores
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def parts(self) -> Parts:
        """The scores as parts (:func:`~crm_engine.report.views.as_parts`)."""
        return self._memoised("parts", lambda: as_parts(self.scores))

    @property
    def height(self) -> int:
        """How many customers were scored."""
        return self._memoised("height", lambda: count_rows(self.parts, pl.lit(True))[0])

    @property
    def filled(self) -> frozenset[str]:
        """The scores' columns with at least one value (a stage that ran fills them): one
        aggregate."""

        def count() -> frozenset[str]:
            columns = self.parts.plan().collect_schema().names()
            counts = count_rows(self.parts, *(pl.col(c).is_not_null() for c in columns))
            return frozenset(c for c, n in zip(columns, counts, strict=True) if n)

        return self._memoised("filled", count)

    def has(self, col: str) -> bool:
        """Whether the scores have ``col`` with at least one value."""
        return col in self.filled


def currency_label(inp: ReportInputs) -> str:
    """The currency money titles show: ``output.currency``, or "units" when unset."""
    return inp.currency or "units"
