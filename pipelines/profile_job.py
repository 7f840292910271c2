"""Profile job: read the input tables, build the point-in-time profile, write it atomically."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from crm_engine.config import FeaturesConfig
from crm_engine.io import DataError, load_tables
from features import PROFILE_CONTRACT, REQUIRED_TABLES, build_profile, default_as_of, to_date

__all__ = ["resolve_as_of", "sink_parquet_atomic", "write_profiles"]


def resolve_as_of(data_dir: Path, as_of: dt.date | str | None = None) -> dt.date:
    """``as_of`` as a date; when omitted, the first day of the month after the last transaction.

    Raises
    ------
    DataError
        When ``as_of`` is omitted and there is no transactions table or it is empty.
    """
    if as_of is not None:
        try:
            return to_date(as_of)
        except (TypeError, ValueError) as e:
            raise DataError(str(e)) from None
    tables = load_tables(Path(data_dir))
    if "transactions" not in tables:
        raise DataError(f"no transactions table under {data_dir}: give --as-of explicitly")
    try:
        return default_as_of(tables["transactions"])
    except ValueError as e:
        raise DataError(f"{data_dir}: {e}") from None


def sink_parquet_atomic(
    lf: pl.LazyFrame, path: Path, metadata: dict[str, str] | None = None
) -> int:
    """Stream a plan into ``path`` via a temporary file beside it, then rename; returns rows.

    The plan is executed once by the streaming engine (``sink_parquet``); a failure leaves
    any existing ``path`` untouched. ``metadata`` goes both in the file's key-value metadata
    and in the Arrow schema metadata (what ``pyarrow.parquet.read_schema`` shows), like
    ``crm_engine.io.write_parquet_atomic``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        arrow_schema = None
        if metadata:
            empty = pl.DataFrame(schema=lf.collect_schema()).to_arrow()
            arrow_schema = empty.schema.with_metadata(metadata)
        lf.sink_parquet(
            tmp,
            compression="zstd",
            metadata=metadata,
            arrow_schema=arrow_schema,
            engine="streaming",
        )
        rows = pq.read_metadata(tmp).num_rows
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return rows


def write_profiles(
    data_dir: Path,
    as_of: dt.date | str | None,
    out: Path,
    cfg: FeaturesConfig | None = None,
    *,
    validate: bool = True,
) -> int:
    """Write the customer profile at ``as_of`` to the Parquet file ``out``.

    Parameters
    ----------
    data_dir
        Directory of the input tables (``crm_engine.io.load_tables``).
    as_of
        First day not observed; None: first day of the month after the last transaction.
    out
        Target Parquet file, replaced atomically. Its key-value metadata holds the contract
        id (``crm.profile/v1``) and ``as_of``.
    cfg
        Feature options (defaults when None).
    validate
        Check the input tables against their contracts first and stop on errors.

    Returns
    -------
    int
        Number of customers written.

    Raises
    ------
    DataError
        On invalid input tables, a missing required table or an unusable ``as_of``.
    """
    data_dir = Path(data_dir)
    as_of_date = resolve_as_of(data_dir, as_of)
    if validate:
        from crm_engine.validation import validate as validate_tables

        validate_tables(data_dir, as_of_date).raise_for_errors()
    tables = load_tables(data_dir)
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise DataError(f"{data_dir}: required table(s) not found: {', '.join(missing)}")
    profile = build_profile(tables, as_of_date, cfg or FeaturesConfig())
    metadata = {"contract": PROFILE_CONTRACT, "as_of": as_of_date.isoformat()}
    return sink_parquet_atomic(profile, Path(out), metadata)
