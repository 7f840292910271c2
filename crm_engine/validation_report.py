"""What validating a data directory found: each problem, each table, and the report."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from crm_engine.io import DataError

Severity = Literal["error", "warning"]
MAX_EXAMPLES = 5
"""Examples (ids or row numbers) a problem names, at most."""


@dataclass(frozen=True)
class Problem:
    """One validation finding."""

    severity: Severity
    table: str
    file: str
    column: str | None
    rows: int
    message: str
    examples: tuple[str, ...] = ()

    def __str__(self) -> str:
        col = f" column {self.column}" if self.column else ""
        ex = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        return f"{self.table} [{self.file}]{col}: {self.message}: {self.rows} rows{ex}"


@dataclass
class TableReport:
    """What was found for one contract table."""

    name: str
    file: str | None
    rows: int | None
    required: bool


@dataclass
class ValidationReport:
    """The result of validating a data directory."""

    data_dir: Path
    as_of: dt.date | None
    tables: list[TableReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise `DataError` listing every error (nothing should be written after this)."""
        if self.errors:
            lines = [f"{len(self.errors)} data error(s) in {self.data_dir}:"]
            lines += [f"  - {p}" for p in self.errors]
            raise DataError("\n".join(lines))

    def summary(self) -> dict[str, object]:
        """A JSON-friendly summary (counts only, never customer rows) for manifests and MLflow."""
        return {
            "tables": {t.name: {"file": t.file, "rows": t.rows} for t in self.tables},
            "errors": [str(p) for p in self.errors],
            "warnings": [
                {"table": p.table, "column": p.column, "rows": p.rows, "message": p.message}
                for p in self.warnings
            ],
        }
