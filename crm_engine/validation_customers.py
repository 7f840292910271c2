"""The checks across input tables, against customers: every row's customer is known, no
customer_id is repeated, and enough customers bought something before as_of to be modelled.

What :func:`crm_engine.validation.validate` keeps of each table's pass for them is a
:class:`Scanned`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from crm_engine.contracts import INPUT_TABLES
from crm_engine.validation_report import MAX_EXAMPLES, Problem, ValidationReport

ORPHAN_ERROR_SHARE = 0.5
"""Above this share of rows for unknown customers, ids of two tables do not match: an error."""
PROBE_ROWS_PER_CUSTOMER = 1000
"""Enough-to-model first reads this many purchases per customer needed, looking for them."""


@dataclass
class Scanned:
    """A table validated in one pass, with what the checks across tables need from it."""

    lf: pl.LazyFrame
    """The cast frame, with row numbers."""
    file: str
    orphans: dict[str, tuple[int, int]] | None = None
    """Key -> (rows for unknown customers, rows with that key), when the ids of customers were
    known during the pass (else None: counted afterwards)."""
    orphan_details: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    """Key -> (distinct unknown ids, examples), for the keys with unknown customers."""
    latest: pl.DataFrame | None = None
    """The latest value of the time column (one row), when it was asked for: to date the run."""


def orphan_rows(key: str, known: pl.Series) -> pl.Expr:
    """Rows whose ``key`` is no customer_id of customers: an anti-join, as a row predicate."""
    return (pl.col(key).is_not_null() & ~pl.col(key).is_in(known.implode())).fill_null(False)


def orphan_counts(keys: tuple[str, ...], known: pl.Series) -> list[pl.Expr]:
    """Per key: rows for unknown customers (``o_<key>``) and rows with the key (``ot_<key>``)."""
    aggs: list[pl.Expr] = []
    for key in keys:
        aggs += [
            orphan_rows(key, known).sum().cast(pl.Int64).alias(f"o_{key}"),
            pl.col(key).is_not_null().sum().cast(pl.Int64).alias(f"ot_{key}"),
        ]
    return aggs


def orphan_examples(key: str, known: pl.Series) -> list[pl.Expr]:
    """The distinct unknown ids and the first of them (the rare path: a second query)."""
    unknown = pl.col(key).filter(orphan_rows(key, known))
    return [
        unknown.n_unique().cast(pl.Int64).alias(f"oi_{key}"),
        unknown.unique().sort().head(MAX_EXAMPLES).implode().alias(f"x_{key}"),
    ]


def orphan_found(key: str, found: dict[str, Any]) -> tuple[int, tuple[str, ...]]:
    """(distinct unknown ids, examples) of ``key`` from the row of :func:`orphan_examples`."""
    return int(found[f"oi_{key}"]), tuple(f"{key}={v}" for v in found[f"x_{key}"])


def duplicates(ids: pl.Series, file: str, report: ValidationReport) -> None:
    """An error for the customer_id values of customers that appear more than once."""
    dup = (
        ids.drop_nulls()
        .to_frame("customer_id")
        .group_by("customer_id")
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .filter(pl.col("n") > 1)
        .sort("customer_id")
    )
    report_duplicates(
        int(dup["n"].sum()), dup.height, dup["customer_id"].head(MAX_EXAMPLES), file, report
    )


def report_duplicates(
    rows: int, ids: int, first: Iterable[Any], file: str, report: ValidationReport
) -> None:
    """The error for ``ids`` customer_id values repeated on ``rows`` rows of customers
    (``first``: the smallest of them); nothing when there are none."""
    if not ids:
        return
    report.problems.append(
        Problem(
            "error",
            "customers",
            file,
            "customer_id",
            rows,
            f"duplicate customer_id ({ids} ids repeated)",
            tuple(f"customer_id={v}" for v in first),
        )
    )


def unknown_customers(
    name: str, scanned: Scanned, known: pl.Series, report: ValidationReport
) -> None:
    """Rows for customers not in customers: counted in the table's pass (else here)."""
    lf = scanned.lf
    if scanned.orphans is None:  # the ids of customers were not known during the pass
        present = set(lf.collect_schema().names())
        keys = tuple(k for k in INPUT_TABLES[name].keys if k in present)
        counts = lf.select(orphan_counts(keys, known)).collect().row(0, named=True)
        scanned.orphans = {k: (int(counts[f"o_{k}"]), int(counts[f"ot_{k}"])) for k in keys}
        lost = [k for k in keys if counts[f"o_{k}"]]
        if lost:
            details = [e for k in lost for e in orphan_examples(k, known)]
            found = lf.select(details).collect().row(0, named=True)
            scanned.orphan_details = {k: orphan_found(k, found) for k in lost}
    report_unknown(name, scanned, report)


def report_unknown(name: str, scanned: Scanned, report: ValidationReport) -> None:
    """A warning (an error when most rows are) per key of ``scanned`` with rows for unknown
    customers, from its counts (:attr:`Scanned.orphans`, :attr:`Scanned.orphan_details`)."""
    assert scanned.orphans is not None
    for key, (n, total) in scanned.orphans.items():
        if not n:
            continue
        ids, examples = scanned.orphan_details[key]
        most = n > ORPHAN_ERROR_SHARE * total
        message = f"rows for customers not in customers ({ids} ids)"
        if most:
            message = (
                f"{n / total:.0%} of the rows match no customer_id of customers: do the ids "
                "have the same form in both tables (e.g. '000001' vs 1)?"
            )
        report.problems.append(
            Problem(
                "error" if most else "warning",
                name,
                scanned.file,
                key,
                n,
                message,
                examples,
            )
        )


def enough_to_model(
    customers: pl.DataFrame,
    file: str,
    transactions: pl.LazyFrame,
    as_of: dt.date,
    min_customers: int,
    report: ValidationReport,
) -> None:
    """At least ``min_customers`` customers at ``as_of`` who bought something before it.

    The first purchases of the active customers are read until enough distinct buyers are
    seen (a few batches of a normal table); only when there are too few is everything counted,
    for the message.
    """
    active = customers.filter(
        (pl.col("signup_date") < pl.lit(as_of))
        & (pl.col("churn_date").is_null() | (pl.col("churn_date") >= pl.lit(as_of)))
    ).select("customer_id")
    buys = transactions.filter((pl.col("ts") < pl.lit(as_of)) & (pl.col("amount") > 0))
    ids = active["customer_id"].drop_nulls().unique()
    seen = (
        buys.filter(pl.col("customer_id").is_in(ids.implode()))
        .select("customer_id")
        .head(PROBE_ROWS_PER_CUSTOMER * min_customers)
        .select(pl.col("customer_id").n_unique())
        .collect()
        .item()
    )
    if seen >= min_customers:  # each of them is at least one active customer who bought
        return
    bought = buys.select("customer_id").unique()
    n_buyers = int(active.lazy().join(bought, on="customer_id").select(pl.len()).collect().item())
    report_too_little(active.height, n_buyers, file, as_of, min_customers, report)


def report_too_little(
    active: int,
    buyers: int,
    file: str,
    as_of: dt.date,
    min_customers: int,
    report: ValidationReport,
) -> None:
    """The error when fewer than ``min_customers`` of the ``active`` customers at ``as_of``
    (rows of customers) are ``buyers`` (with a purchase before it); nothing otherwise."""
    if buyers >= min_customers:
        return
    report.problems.append(
        Problem(
            "error",
            "customers",
            file,
            None,
            buyers,
            f"too little to model at as_of {as_of}: {active} customer(s) still customers "
            f"then, {buyers} with a purchase before it (at least {min_customers} needed; "
            "is as_of before the data, or has everyone churned?)",
        )
    )
