"""Data quality: the validation warnings of the run."""

from __future__ import annotations

import polars as pl

from crm_engine.report.formatting import html_table
from crm_engine.report.inputs import ReportInputs, currency_label
from crm_engine.report.section import Section


def body(inp: ReportInputs) -> str:
    """Data quality: the run's validation warnings."""
    parts: list[str] = []
    if not inp.warnings:
        return "<p>No validation warnings.</p>"
    parts.append(
        html_table(
            pl.DataFrame(
                {
                    "table": [str(w.get("table")) for w in inp.warnings],
                    "column": [str(w.get("column")) for w in inp.warnings],
                    "rows": [int(w.get("rows") or 0) for w in inp.warnings],
                    "warning": [str(w.get("message")) for w in inp.warnings],
                }
            ),
            currency_label(inp),
        )
    )
    return "".join(parts)


SECTION = Section("quality", "Data quality", body)
