"""Input validation against `crm.inputs/v1`: every problem named by table, file, column and rows.

Each table is read once: its row checks (:mod:`crm_engine.validation_checks`) and its rows for
unknown customers are counted in one pass; the checks across tables against customers are in
:mod:`crm_engine.validation_customers`. Where the passes run is a :class:`Reader`'s choice: here
in Polars (:class:`LocalReader`), or on Spark's executors
(:class:`pipelines.spark.validation.SparkReader`), with the same checks and messages. The
findings are :mod:`crm_engine.validation_report`'s types, re-exported here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow.parquet as pq

from crm_engine.contracts import INPUT_TABLES, TableContract
from crm_engine.io import (
    DEFAULT_TIMEZONE,
    DEPENDENCY_ERRORS,
    UTC_OFFSET,
    DataError,
    TableSource,
    cast_expr,
    failure,
    find_tables,
    id_dtype_of,
    scan_raw,
    scan_table,
)
from crm_engine.validation_checks import Check, table_checks
from crm_engine.validation_customers import (
    Scanned,
    duplicates,
    enough_to_model,
    orphan_counts,
    orphan_examples,
    orphan_found,
    orphan_rows,
    unknown_customers,
)
from crm_engine.validation_report import (
    MAX_EXAMPLES,
    Problem,
    Severity,
    TableReport,
    ValidationReport,
)

__all__ = [
    "MAX_TEXT_BYTES",
    "MIN_CUSTOMERS",
    "LocalReader",
    "Problem",
    "Reader",
    "Severity",
    "TablePass",
    "TableReport",
    "ValidationReport",
    "guarded",
    "validate",
]

_ROW = "__row"
_FILE = "__file"
MAX_TEXT_BYTES = 256
"""Longest text value accepted by default (``data.max_text_bytes``): category names, not blobs."""
MIN_CUSTOMERS = 10
"""Customers (with a purchase before as_of) a run needs at least: fewer cannot be modelled."""


def _display(source: TableSource, data_dir: Path) -> str:
    try:
        return str(source.path.relative_to(data_dir))
    except ValueError:
        return str(source.path)


def _unreadable(source: TableSource) -> tuple[str, str] | None:
    """Return (file, reason) for the first file that cannot be opened, else None."""
    for path in source.files():
        try:
            if path.suffix == ".parquet":
                pq.read_metadata(path)
            else:
                pl.scan_csv(path, infer_schema=False).head(1).collect()
        except DEPENDENCY_ERRORS as e:
            return path.name, failure(e)
    if source.kind == "parquet_dir" and not source.files():
        return source.path.name, "directory holds no .parquet files"
    return None


def _failing_part(
    source: TableSource, contract: TableContract, id_dtype: pl.DataType, timezone: str
) -> Path | None:
    """The first part file of a directory table that fails on its own to be read and cast (to
    name it when the whole table failed), else None."""
    if source.kind != "parquet_dir":
        return None
    for path in source.files():
        try:
            scan_table(
                TableSource(source.name, path, "parquet"), contract, id_dtype, timezone
            ).collect()
        except DEPENDENCY_ERRORS:
            return path
    return None


def _example_expr(contract: TableContract, present: set[str]) -> pl.Expr:
    key = contract.keys[0]
    if key in present:
        return (
            pl.when(pl.col(key).is_not_null())
            .then(pl.lit(f"{key}=") + pl.col(key).cast(pl.String))
            .otherwise(pl.lit("row ") + pl.col(_ROW).cast(pl.String))
        )
    return pl.lit("row ") + pl.col(_ROW).cast(pl.String)


def _cast_frame(
    raw: pl.LazyFrame,
    schema: pl.Schema,
    contract: TableContract,
    id_dtype: pl.DataType,
    timezone: str,
) -> pl.LazyFrame:
    """Row numbers, the part file (directory tables), every column as stored and as cast."""
    target = contract.polars_schema(id_dtype)
    present = [c for c in contract.columns if c in schema]
    return raw.with_row_index(_ROW).select(
        pl.col(_ROW),
        *([pl.col(_FILE)] if _FILE in schema else []),
        *[pl.col(c).alias(f"__raw_{c}") for c in present],
        *[cast_expr(c, schema[c], target[c], timezone) for c in present],
    )


def _customer_columns(
    source: TableSource, id_dtype: pl.DataType, timezone: str, columns: tuple[str, ...]
) -> pl.DataFrame | None:
    """``columns`` of customers (``customer_id`` first), cast as validation casts them; None
    when they cannot be read (validating customers then says why)."""
    try:
        raw = scan_raw(source)
        schema = raw.collect_schema()
        if "customer_id" not in schema:
            return None
        lf = _cast_frame(raw, schema, INPUT_TABLES["customers"], id_dtype, timezone)
        return lf.select(c for c in columns if c in schema).collect()
    except DEPENDENCY_ERRORS:
        return None


@dataclass(frozen=True)
class TablePass:
    """One table's pass as a :class:`Reader` runs it: :meth:`aggs` over the cast rows of
    ``source`` (:meth:`frame`). Each aggregation is a count (summed) or, ``__last``, a latest
    time (the maximum), so the results of a table's parts add up to the whole's
    (:meth:`merged`)."""

    source: TableSource
    contract: TableContract
    schema: pl.Schema
    """The table as stored, without the part-file column."""
    id_dtype: pl.DataType
    timezone: str
    checks: tuple[Check, ...]
    last: str | None
    """The time column whose latest value dates the run, when it is asked for."""
    keys: tuple[str, ...]
    """The table's key columns that are present (checked against the ids of customers)."""
    as_of: dt.date | None

    def frame(self, raw: pl.LazyFrame) -> pl.LazyFrame:
        """The cast frame of ``raw`` (the table or a part of it), as validation casts it."""
        return _cast_frame(raw, self.schema, self.contract, self.id_dtype, self.timezone)

    def aggs(self) -> list[pl.Expr]:
        """The rows (``__rows``), the rows each check finds (``c<i>``) and the latest time."""
        aggs = [pl.len().cast(pl.Int64).alias("__rows")]
        aggs += [
            c.predicate.fill_null(False).sum().cast(pl.Int64).alias(f"c{i}")
            for i, c in enumerate(self.checks)
        ]
        if self.last is not None:
            aggs.append(pl.col(self.last).max().alias("__last"))
        return aggs

    @staticmethod
    def merged(parts: pl.DataFrame) -> pl.DataFrame:
        """One row of :meth:`aggs` from a row of each part of the table."""
        return parts.select(
            pl.col(c).max() if c == "__last" else pl.col(c).sum() for c in parts.columns
        )


class Reader(Protocol):
    """Where validation's passes over the tables run: :class:`LocalReader` here, in Polars;
    :class:`pipelines.spark.validation.SparkReader` on Spark's executors. Both run the same
    checks (:class:`TablePass`) and report through the same functions
    (:mod:`crm_engine.validation_customers`)."""

    known: pl.Series | None
    """The ids of customers, when the reader holds them (then a table's pass counts its rows
    for unknown customers too: ``o_<key>`` and ``ot_<key>``)."""

    def start(
        self,
        found: dict[str, TableSource],
        id_dtype: pl.DataType,
        timezone: str,
        wanted: tuple[str, ...],
    ) -> None:
        """Before the first table: ``wanted`` columns of customers are what the checks across
        tables read of it."""

    def counts(self, job: TablePass, lf: pl.LazyFrame) -> pl.DataFrame:
        """One row: ``job.aggs()`` over the table (``lf``: its cast frame, here)."""

    def across(
        self, frames: dict[str, Scanned], report: ValidationReport, min_customers: int
    ) -> None:
        """The checks across tables (:mod:`crm_engine.validation_customers`), once every
        table is validated (``frames``: those that could be read)."""


class LocalReader:
    """Validation's passes here, in Polars streaming: the ids of customers are read up front,
    so every table counts its rows for unknown customers in its own pass."""

    def __init__(self) -> None:
        self.known: pl.Series | None = None
        self._people: pl.DataFrame | None = None
        self._wanted: tuple[str, ...] = ()

    def start(
        self,
        found: dict[str, TableSource],
        id_dtype: pl.DataType,
        timezone: str,
        wanted: tuple[str, ...],
    ) -> None:
        self._wanted = wanted
        if "customers" in found:
            self._people = _customer_columns(found["customers"], id_dtype, timezone, wanted)
        if self._people is not None:
            self.known = self._people["customer_id"].drop_nulls().unique()

    def counts(self, job: TablePass, lf: pl.LazyFrame) -> pl.DataFrame:
        known = self.known
        keys = job.keys if known is not None and job.contract.name != "customers" else ()
        ids = known if known is not None else pl.Series("customer_id", [], job.id_dtype)
        return lf.select(job.aggs() + orphan_counts(keys, ids)).collect()

    def across(
        self, frames: dict[str, Scanned], report: ValidationReport, min_customers: int
    ) -> None:
        if "customers" not in frames:
            return
        cust_lf, cust_file = frames["customers"].lf, frames["customers"].file
        with guarded(report, "customers", cust_file):
            if self._people is None:  # not readable up front, yet validated: read it now
                names = cust_lf.collect_schema().names()
                self._people = cust_lf.select(c for c in self._wanted if c in names).collect()
                self.known = self._people["customer_id"].drop_nulls().unique()
            duplicates(self._people["customer_id"], cust_file, report)
        people, known = self._people, self.known
        for name, scanned in frames.items():
            if name == "customers" or known is None:
                continue
            with guarded(report, name, scanned.file):
                unknown_customers(name, scanned, known, report)
        tx, as_of = frames.get("transactions"), report.as_of
        if (
            as_of is not None
            and min_customers > 0
            and tx is not None
            and people is not None
            and {"customer_id", "signup_date", "churn_date"} <= set(people.columns)
            and {"customer_id", "ts", "amount"} <= set(tx.lf.collect_schema().names())
        ):
            with guarded(report, "customers", cust_file):
                enough_to_model(people, cust_file, tx.lf, as_of, min_customers, report)


def _validate_table(
    source: TableSource,
    contract: TableContract,
    data_dir: Path,
    id_dtype: pl.DataType,
    as_of: dt.date | None,
    report: ValidationReport,
    max_text_bytes: int,
    timezone: str,
    reader: Reader,
    last: bool = False,
) -> Scanned | None:
    """Validate one table in one pass over it; return its cast frame (with row numbers) and
    what the checks across tables need.

    Every check of the table is one aggregation of a single pass by ``reader``, with the rows
    for unknown customers (when the reader holds the ids of customers) and the latest time
    (with ``last``). Only when a count is not zero does a second query, over the failing rows
    only, find the examples and part files that the messages name (all checks together).
    """
    file = _display(source, data_dir)
    name = contract.name
    bad = _unreadable(source)
    if bad is not None:
        report.tables.append(TableReport(name, file, None, contract.required))
        report.problems.append(
            Problem(
                "error",
                name,
                f"{file}/{bad[0]}" if source.kind == "parquet_dir" else file,
                None,
                0,
                f"unreadable or truncated file ({bad[1]})",
            )
        )
        return None
    raw = scan_raw(source, file_column=_FILE)  # which part file each row is in, for messages
    try:
        schema = raw.collect_schema()
    except DEPENDENCY_ERRORS as e:
        report.tables.append(TableReport(name, file, None, contract.required))
        report.problems.append(
            Problem("error", name, file, None, 0, f"unreadable or corrupt ({failure(e)})")
        )
        return None
    present = {c for c in contract.columns if c in schema}
    for col in contract.columns:
        if col not in schema and col not in contract.optional:
            report.problems.append(
                Problem(
                    "error",
                    name,
                    file,
                    col,
                    0,
                    f"missing required column (found: {', '.join(schema.names())})",
                )
            )
    target = contract.polars_schema(id_dtype)
    lf = _cast_frame(raw, schema, contract, id_dtype, timezone)
    checks = table_checks(contract, present, as_of, max_text_bytes)
    for col in sorted(present):
        zone = getattr(schema[col], "time_zone", None)
        if zone is not None:
            report.problems.append(
                Problem("warning", name, file, col, 0, f"time zone {zone}: converted to {timezone}")
            )
        elif schema[col] == pl.String and isinstance(target[col], pl.Datetime):
            offset = pl.col(f"__raw_{col}").str.strip_chars().str.contains(UTC_OFFSET)
            message = f"timestamps with a UTC offset: converted to {timezone}"
            checks.append(Check("warning", col, message, offset))
    tc = contract.time_column if last and contract.time_column in present else None
    job = TablePass(
        source,
        contract,
        pl.Schema({c: t for c, t in schema.items() if c != _FILE}),
        id_dtype,
        timezone,
        tuple(checks),
        tc,
        tuple(k for k in contract.keys if k in present),
        as_of,
    )
    try:
        result = reader.counts(job, lf)
    except DEPENDENCY_ERRORS as e:
        report.tables.append(TableReport(name, file, None, contract.required))
        part = _failing_part(source, contract, id_dtype, timezone)
        where = f"{file}/{part.relative_to(source.path)}" if part is not None else file
        report.problems.append(
            Problem("error", name, where, None, 0, f"unreadable or corrupt ({failure(e)})")
        )
        return None
    # the latest time stays a Polars value: a corrupt one may be beyond Python's datetime
    latest = result.select(pl.col("__last").alias(tc)) if tc is not None else None
    counts = result.drop("__last", strict=False).row(0, named=True)
    n_rows = int(counts["__rows"])
    report.tables.append(TableReport(name, file, n_rows, contract.required))
    if contract.required and n_rows == 0:
        report.problems.append(Problem("error", name, file, None, 0, "required table is empty"))
    scanned = Scanned(lf, file, latest=latest)
    keys = tuple(k for k in job.keys if f"o_{k}" in counts)  # counted in this pass
    if reader.known is not None and name != "customers":
        scanned.orphans = {k: (int(counts[f"o_{k}"]), int(counts[f"ot_{k}"])) for k in keys}
    failing = [(i, c) for i, c in enumerate(checks) if counts[f"c{i}"]]
    lost = [k for k in keys if counts[f"o_{k}"]]
    if not failing and not lost:
        return scanned
    # the rare path: examples and part files, for every failing check in one query
    example = _example_expr(contract, present)
    details: list[pl.Expr] = []
    for i, check in failing:
        rows = check.predicate.fill_null(False)
        first = example.filter(rows).unique(maintain_order=True).head(MAX_EXAMPLES)
        details.append(first.implode().alias(f"e{i}"))
        if _FILE in schema:  # name the part files of a directory table
            details.append(
                pl.col(_FILE).filter(rows).unique().sort().head(4).implode().alias(f"f{i}")
            )
    ids = reader.known if reader.known is not None else pl.Series([], dtype=id_dtype)
    for k in lost:
        details += orphan_examples(k, ids)
    wrong = [c.predicate.fill_null(False) for _, c in failing]
    wrong += [orphan_rows(k, ids) for k in lost]
    found = lf.filter(pl.any_horizontal(wrong)).select(details).collect().row(0, named=True)
    for i, check in failing:
        where = file
        if _FILE in schema:
            parts = found[f"f{i}"]
            names = [_display(TableSource(name, Path(f), "parquet"), data_dir) for f in parts]
            where = ", ".join(names[:3]) + (" and more" if len(names) > 3 else "")
        report.problems.append(
            Problem(
                check.severity,
                name,
                where,
                check.column,
                int(counts[f"c{i}"]),
                check.message,
                tuple(found[f"e{i}"]),
            )
        )
    scanned.orphan_details = {k: orphan_found(k, found) for k in lost}
    return scanned


def validate(
    data_dir: Path,
    as_of: dt.date | None = None,
    max_text_bytes: int = MAX_TEXT_BYTES,
    min_customers: int = 0,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    default_as_of: Callable[[pl.LazyFrame], dt.date] | None = None,
    reader: Reader | None = None,
) -> ValidationReport:
    """Validate every contract table found under ``data_dir``.

    Parameters
    ----------
    data_dir
        Directory holding ``<table>.parquet``, ``<table>/`` or ``<table>.csv`` files.
    as_of
        When given, rows dated on or after it are counted as a warning, and the data must hold
        enough customers and purchases before it to be modelled.
    max_text_bytes
        Longest text value accepted.
    min_customers
        With ``as_of``: customers with a purchase before it that the run needs (the model
        stages need :data:`MIN_CUSTOMERS`; a profile alone needs none).
    timezone
        The wall clock timestamps are read on (``data.timezone``): time-zone aware columns
        are converted to it, with a warning.
    default_as_of
        Without ``as_of``: how a run dates itself from the transactions table (e.g.
        ``features.default_as_of``). It is applied to transactions only once they are
        validated without error (a corrupt timestamp is refused by name, never read by it),
        and to what it reads of them, their latest ``ts``: a one-row frame, found by the
        validation pass, so dating the run reads nothing more. The other tables are then
        checked against the result, ``report.as_of``.
    reader
        Where the passes over the tables run (default: here, :class:`LocalReader`; the Spark
        backend's on the executors, :class:`pipelines.spark.validation.SparkReader`).

    Returns
    -------
    ValidationReport
        Tables found with their row counts, and every error and warning. Nothing is written.
        A failure of Polars or Arrow while reading a table (a panic included) is an error
        naming that table and file.
    """
    data_dir = Path(data_dir)
    report = ValidationReport(data_dir=data_dir, as_of=as_of)
    if not data_dir.is_dir():
        report.problems.append(
            Problem("error", "-", str(data_dir), None, 0, "data directory not found")
        )
        return report
    try:
        found = find_tables(data_dir)
        id_dtype = id_dtype_of(data_dir)
    except DataError as e:  # an ambiguous table, a link out of the directory
        report.problems.append(Problem("error", "-", str(data_dir), None, 0, str(e)))
        return report
    order = list(INPUT_TABLES)
    if as_of is None and default_as_of is not None:  # date the run first, from what is valid
        order.remove("transactions")
        order.insert(0, "transactions")
    # the ids of customers (and what enough-to-model needs of them), read once up front so
    # every other table counts its rows for unknown customers in its own pass
    wanted = ("customer_id", "signup_date", "churn_date") if min_customers > 0 else ("customer_id",)
    reader = reader if reader is not None else LocalReader()
    reader.start(found, id_dtype, timezone, wanted)
    frames: dict[str, Scanned] = {}
    for name in order:
        contract = INPUT_TABLES[name]
        source = found.get(name)
        if source is None:
            if contract.required:
                report.tables.append(TableReport(name, None, None, True))
                report.problems.append(
                    Problem(
                        "error",
                        name,
                        f"{name}.parquet|{name}/|{name}.csv",
                        None,
                        0,
                        "required table missing",
                    )
                )
            continue
        file = _display(source, data_dir)
        errors = len(report.errors)
        dating = name == "transactions" and report.as_of is None and default_as_of is not None
        with guarded(report, name, file):
            scanned = _validate_table(
                source,
                contract,
                data_dir,
                id_dtype,
                report.as_of,
                report,
                max_text_bytes,
                timezone,
                reader,
                last=dating,
            )
            if scanned is not None:
                frames[name] = scanned
            latest = scanned.latest if scanned is not None else None
            if dating and default_as_of is not None and latest is not None:
                if len(report.errors) == errors:  # its time column is valid: date the run
                    report.as_of = default_as_of(latest.lazy())
    report.tables.sort(key=lambda t: list(INPUT_TABLES).index(t.name))
    if "customers" in frames and "customer_id" not in frames["customers"].lf.collect_schema():
        del frames["customers"]  # its ids cannot be checked, nor checked against
    reader.across(frames, report, min_customers)
    return report


@contextlib.contextmanager
def guarded(report: ValidationReport, table: str, file: str) -> Iterator[None]:
    """Turn a failure of Polars or Arrow (a panic included) into an error naming the table."""
    try:
        yield
    except DEPENDENCY_ERRORS as e:
        report.problems.append(
            Problem("error", table, file, None, 0, f"unreadable or corrupt ({failure(e)})")
        )
