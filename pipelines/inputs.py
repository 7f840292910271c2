"""What a run reads, checked before any stage runs: the data directory, the validated tables
and the day the run is dated.

Validation runs here (:func:`crm_engine.validation.validate`), or on Spark's executors for the
Spark backend (:func:`validation_reader`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from crm_engine.config import PipelineConfig
from crm_engine.io import DEPENDENCY_ERRORS, DataError, failure, load_tables
from crm_engine.validation import MIN_CUSTOMERS, Reader, ValidationReport, validate
from features.profile import REQUIRED_TABLES

if TYPE_CHECKING:
    from pipelines.spark.session import LazySession

__all__ = ["backend_session", "data_directory", "prepare_inputs", "validation_reader"]


def _guess_as_of(tables: dict[str, pl.LazyFrame], data_dir: Path) -> dt.date | None:
    """The default as_of (month after the last transaction) of unvalidated tables (only with
    ``--no-validate``; a validated run takes it from validation), or None without
    transactions.

    Raises
    ------
    DataError
        When the transactions cannot be read (a corrupt file, a timestamp Polars cannot hold).
    """
    from features import default_as_of

    if "transactions" not in tables:
        return None
    try:
        return default_as_of(tables["transactions"])
    except ValueError:  # no transactions
        return None
    except DEPENDENCY_ERRORS as e:
        raise DataError(
            f"transactions in {data_dir}: cannot be read to date the run ({failure(e)}); "
            "validate the data or pass --as-of"
        ) from e


def data_directory(cfg: PipelineConfig) -> Path:
    """The configured data directory.

    Raises
    ------
    DataError
        When it is not there, or not a directory.
    """
    data_dir = Path(cfg.data.dir)
    if not data_dir.is_dir():
        raise DataError(f"data directory {data_dir} does not exist or is not a directory")
    return data_dir


def prepare_inputs(
    cfg: PipelineConfig,
    validate_inputs: bool = True,
    models: bool = False,
    session: LazySession | None = None,
) -> tuple[dt.date, ValidationReport | None, dict[str, pl.LazyFrame]]:
    """as_of, the validation report and the tables: everything checked before any stage runs.

    With ``models`` (a model stage will run), too few customers to fit is an error too. With
    ``session`` (the Spark backend's), the tables are validated on Spark's executors
    (:class:`pipelines.spark.validation.SparkReader`: the same checks and messages). The
    ``crm-engine backtest`` command reads its inputs the same way.

    Raises
    ------
    DataError
        A missing data directory or required table, validation errors, no date to run at.
    """
    data_dir = data_directory(cfg)
    zone = cfg.data.timezone
    as_of = cfg.data.as_of
    report = None
    if validate_inputs:
        from features import default_as_of

        need = MIN_CUSTOMERS if models else 0
        report = validate(
            data_dir,
            as_of,
            cfg.data.max_text_bytes,
            need,
            timezone=zone,
            default_as_of=default_as_of,  # from the validated transactions only
            reader=validation_reader(session),
        )
        report.raise_for_errors()
        as_of = report.as_of
    tables = load_tables(data_dir, zone)
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise DataError(f"{data_dir}: required table(s) not found: {', '.join(missing)}")
    if as_of is None and not validate_inputs:
        as_of = _guess_as_of(tables, data_dir)
    if as_of is None:
        raise DataError(f"transactions in {data_dir}: no timestamps to date the run; pass --as-of")
    return as_of, report, tables


def validation_reader(session: LazySession | None) -> Reader | None:
    """Where validation reads the tables: on the executors of the Spark backend's ``session``
    (:class:`pipelines.spark.validation.SparkReader`), else here (None)."""
    if session is None:
        return None
    from pipelines.spark.validation import SparkReader

    return SparkReader(session.get())


@contextlib.contextmanager
def backend_session(cfg: PipelineConfig) -> Iterator[LazySession | None]:
    """The Spark backend's session for what runs inside (None for the local backend): checked
    before anything is read or written (PySpark and Java there), opened when first needed,
    stopped on the way out, committed or failed, if this run started it.

    Raises
    ------
    pipelines.spark.session.SparkUnavailable
        When the Spark backend cannot start here.
    """
    if cfg.engine.backend != "spark":
        yield None
        return
    from pipelines.spark.session import LazySession, check_available

    check_available(cfg.engine.spark)
    session = LazySession(cfg.engine.spark)
    try:
        yield session
    finally:
        session.stop()
