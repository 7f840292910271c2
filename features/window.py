"""Point-in-time helpers: which rows and months a profile dated ``as_of`` may see."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from crm_engine.contracts import INPUT_TABLES

__all__ = [
    "attach",
    "days_before",
    "default_as_of",
    "last_complete_month",
    "month_offset",
    "observed",
    "to_date",
    "trailing_months",
]


def to_date(value: dt.date | str) -> dt.date:
    """Normalise an ``as_of`` given as a date, a datetime (its date part) or an ISO string."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError as e:
            raise ValueError(f"as_of={value!r} is not an ISO date (YYYY-MM-DD)") from e
    raise TypeError(f"as_of must be a date or an ISO string, got {type(value).__name__}")


def month_offset(month: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` months after (or before, if negative) ``month``."""
    index = month.year * 12 + (month.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


def last_complete_month(as_of: dt.date) -> dt.date:
    """First day of the latest month that ends on or before ``as_of`` (month + 1 month <= as_of)."""
    return month_offset(as_of.replace(day=1), -1)


def trailing_months(as_of: dt.date, n: int) -> tuple[dt.date, dt.date]:
    """First days of the first and last month of the ``n`` complete months before ``as_of``."""
    last = last_complete_month(as_of)
    return month_offset(last, -(n - 1)), last


def days_before(as_of: dt.date, days: int) -> dt.datetime:
    """Midnight ``days`` days before ``as_of``: the start of a trailing ``days``-day window."""
    return dt.datetime.combine(as_of - dt.timedelta(days=days), dt.time())


def observed(lf: pl.LazyFrame, table: str, as_of: dt.date) -> pl.LazyFrame:
    """Keep the rows of an input table a profile dated ``as_of`` may see.

    Dated tables keep rows whose time column is strictly before ``as_of``. Monthly tables
    (``contract.monthly``) keep only months that end on or before ``as_of``; their month
    column is truncated to the first day of the month first, so a mid-month date cannot
    smuggle a partially observed month in.

    Parameters
    ----------
    lf
        The table, cast to its contract (``crm_engine.io.load_tables``).
    table
        Its contract name (``"transactions"``, ``"usage"``, ...).
    as_of
        The first day not observed.
    """
    contract = INPUT_TABLES[table]
    col = contract.time_column
    if col is None:
        return lf
    dtype = contract.schema[col]
    if contract.monthly:
        month = pl.col(col).dt.truncate("1mo")
        return lf.with_columns(month.alias(col)).filter(
            pl.col(col) <= pl.lit(last_complete_month(as_of))
        )
    bound: dt.date | dt.datetime = as_of
    if isinstance(dtype, pl.Datetime):
        bound = dt.datetime.combine(as_of, dt.time())
    return lf.filter(pl.col(col) < pl.lit(bound, dtype=dtype))


def default_as_of(transactions: pl.LazyFrame) -> dt.date:
    """First day of the month after the last transaction (the CLI's default ``as_of``).

    This reads the ``ts`` column (a small, single-column aggregation).

    Raises
    ------
    ValueError
        When there are no transactions to date the run from.
    """
    last = transactions.select(pl.col("ts").max()).collect(engine="streaming").item()
    if last is None:
        raise ValueError("transactions is empty: give as_of explicitly")
    last_day = last.date() if isinstance(last, dt.datetime) else last
    return month_offset(last_day.replace(day=1), 1)


@dataclass(frozen=True)
class DataStart:
    """When the transactions start: ``first_day`` (None without rows) and their ``rows``."""

    first_day: dt.date | None
    rows: int


def data_start(transactions: pl.LazyFrame) -> DataStart:
    """The first day of the ``transactions`` and their row count (one single-column pass).

    What came before cannot be seen: churn training cuts must fall after it, and postpaid
    customers who signed up earlier are only in the data because they survived to it.
    """
    first, rows = (
        transactions.select(pl.col("ts").min(), pl.len()).collect(engine="streaming").row(0)
    )
    return DataStart(None if first is None else to_date(first), int(rows))


def attach(
    profile: pl.LazyFrame,
    group: pl.LazyFrame,
    fill: dict[str, pl.Expr | float | int | bool] | None = None,
) -> pl.LazyFrame:
    """Left-join one group's per-customer frame to the profile and fill absent customers.

    Every customer of ``profile`` keeps exactly one row (``group`` must be unique on
    ``customer_id``); customers without rows in the group's table get ``fill`` values
    (literals or expressions over the joined profile), other columns stay null.
    """
    joined = profile.join(group, on="customer_id", how="left", coalesce=True)
    if not fill:
        return joined
    return joined.with_columns(
        pl.col(name).fill_null(value if isinstance(value, pl.Expr) else pl.lit(value))
        for name, value in fill.items()
    )
