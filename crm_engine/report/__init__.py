"""The analyst's report: one self-contained HTML file with inline images (opens from disk).

Layout: ``views`` (the frames behind the report and the save-first list), ``inputs`` (what a
report is rendered from), ``formatting`` (numbers, labels, tables), ``charts`` (inline PNGs),
``sections/`` (one module per section of the page) and ``page`` (CSS, section order, writing).
"""

from crm_engine.report.inputs import Logged, ReportInputs
from crm_engine.report.page import render_report, write_report
from crm_engine.report.views import (
    SAVE_FIRST_COLUMNS,
    SAVE_FIRST_FILE,
    SAVE_FIRST_ROWS,
    lifecycle_funnel,
    loyalty_split,
    save_first,
    save_first_rank,
    value_risk_matrix,
)

__all__ = [
    "SAVE_FIRST_COLUMNS",
    "SAVE_FIRST_FILE",
    "SAVE_FIRST_ROWS",
    "Logged",
    "ReportInputs",
    "lifecycle_funnel",
    "loyalty_split",
    "render_report",
    "save_first",
    "save_first_rank",
    "value_risk_matrix",
    "write_report",
]
