"""The row checks of one input table: what each column must satisfy, as row predicates.

:func:`crm_engine.validation.validate` counts every predicate in one pass over the table's cast
frame (``__raw_<column>`` as stored, ``<column>`` as cast); the checks across tables are in
:mod:`crm_engine.validation_customers`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from crm_engine.contracts import ALLOWED_VALUES, TableContract
from crm_engine.validation_report import Severity

EARLIEST = dt.date(1900, 1, 1)
"""Earliest date accepted in a date column: an earlier one is an error."""


@dataclass(frozen=True)
class Check:
    """One check: the rows where ``predicate`` holds are a problem of ``severity``."""

    severity: Severity
    column: str | None
    message: str
    predicate: pl.Expr


def table_checks(
    contract: TableContract, present: set[str], as_of: dt.date | None, max_text_bytes: int
) -> list[Check]:
    """The checks of ``contract``'s columns that are ``present``, and between them."""
    t = contract.name
    checks: list[Check] = []
    today = dt.date.today()
    for col in contract.columns:
        if col not in present:
            continue
        raw, cast = pl.col(f"__raw_{col}"), pl.col(col)
        dtype = contract.schema[col]
        if dtype.is_float():
            checks.append(
                Check("error", col, "NaN or infinite values", cast.is_nan() | cast.is_infinite())
            )
        if dtype == pl.String():
            checks.append(
                Check(
                    "error",
                    col,
                    f"values longer than {max_text_bytes} bytes (data.max_text_bytes)",
                    cast.str.len_bytes() > max_text_bytes,
                )
            )
        if dtype.is_temporal():
            day = cast.cast(pl.Date)
            checks.append(Check("error", col, f"dated before {EARLIEST}", day < pl.lit(EARLIEST)))
            if col not in contract.may_be_future:
                checks.append(
                    Check("error", col, f"dated after today ({today})", day > pl.lit(today))
                )
        checks.append(
            Check(
                "error",
                col,
                f"cannot be read as {contract.schema[col]}",
                raw.is_not_null() & cast.is_null(),
            )
        )
        if col not in contract.nullable:
            checks.append(Check("error", col, "null values not allowed", raw.is_null()))
        allowed = ALLOWED_VALUES.get((t, col))
        if allowed:
            checks.append(
                Check(
                    "error",
                    col,
                    f"value not in {sorted(allowed)}",
                    cast.is_not_null() & ~cast.is_in(sorted(allowed)),
                )
            )
        rng = contract.ranges.get(col)
        if rng is not None:
            severity: Severity = "error" if rng.policy is None else "warning"
            checks.append(Check(severity, col, rng.message(col), rng.outside(cast)))
    if t == "interactions" and {"opened_at", "closed_at"} <= present:
        checks.append(
            Check(
                "error",
                "closed_at",
                "closed_at before opened_at",
                pl.col("closed_at") < pl.col("opened_at"),
            )
        )
    for (a, b), policy in contract.self_pairs.items():
        if {a, b} <= present:
            checks.append(Check("warning", b, policy, pl.col(a) == pl.col(b)))
    for later in ("churn_date", "contract_end_date"):  # dates that cannot precede the signup
        if t == "customers" and {later, "signup_date"} <= present:
            checks.append(
                Check(
                    "warning",
                    later,
                    f"{later} before signup_date",
                    pl.col(later) < pl.col("signup_date"),
                )
            )
    if t == "customers" and {"contract_end_date", "plan_type"} <= present:
        checks.append(
            Check(
                "warning",
                "contract_end_date",
                "contract_end_date on a prepaid customer (ignored)",
                pl.col("contract_end_date").is_not_null() & (pl.col("plan_type") == "prepaid"),
            )
        )
    tc = contract.time_column
    if as_of is not None and tc and tc in present:
        checks.append(
            Check(
                "warning",
                tc,
                f"rows dated on or after as_of {as_of} (ignored by features)",
                pl.col(tc).cast(pl.Date) >= pl.lit(as_of),
            )
        )
    return checks
