"""Finding, scanning and writing tables: the only place (with `pipelines`) that touches disk."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from crm_engine.contracts import INPUT_TABLES, TableContract


class DataError(ValueError):
    """Bad input data; the message names the table, file, column and row count."""


DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (Exception, pl.exceptions.PanicException)
"""What a reader may raise on corrupt input: any error of Polars or Arrow, and a Polars panic
(``PanicException`` derives from ``BaseException``, so ``except Exception`` lets it through)."""


def failure(error: BaseException) -> str:
    """One line for a dependency's failure: its type and the first line of its message."""
    first = (str(error).strip().splitlines() or [""])[0][:160]
    return f"{type(error).__name__}: {first}"


@dataclass(frozen=True)
class TableSource:
    """Where one input table was found."""

    name: str
    path: Path
    kind: Literal["parquet", "parquet_dir", "csv"]

    def files(self) -> list[Path]:
        """The data files behind the table (sorted, for stable fingerprints)."""
        if self.kind == "parquet_dir":
            return sorted(p for p in self.path.rglob("*.parquet") if p.is_file())
        return [self.path]


def table_path(directory: Path, name: str, *, single_file: bool = True) -> Path:
    """Where table ``name`` is written in ``directory``: ``<name>.parquet``, or without
    ``single_file`` the ``<name>/`` directory of Parquet parts (two of the forms
    :func:`find_table` reads back)."""
    return Path(directory) / (f"{name}.parquet" if single_file else name)


def find_table(data_dir: Path, name: str) -> TableSource | None:
    """Find ``<name>.parquet``, a ``<name>/`` directory of Parquet files, or ``<name>.csv``.

    Raises
    ------
    DataError
        When the table is there in more than one form (which one is meant is ambiguous), or
        when a file of it is a link that leads out of the data directory (its target is not
        read, so nothing of it is echoed).
    """
    data_dir = Path(data_dir)
    candidates: list[tuple[Path, Literal["parquet", "parquet_dir", "csv"]]] = [
        (data_dir / f"{name}.parquet", "parquet"),
        (data_dir / name, "parquet_dir"),
        (data_dir / f"{name}.csv", "csv"),
    ]
    found = [
        TableSource(name, path, kind)
        for path, kind in candidates
        if (path.is_dir() if kind == "parquet_dir" else path.is_file())
    ]
    if len(found) > 1:
        forms = " and ".join(s.path.name + ("/" if s.kind == "parquet_dir" else "") for s in found)
        raise DataError(
            f"table {name} in {data_dir} is there as {forms}: ambiguous, keep one of them"
        )
    if not found:
        return None
    root = data_dir.resolve()
    for path in [found[0].path, *found[0].files()]:
        if not path.resolve().is_relative_to(root):
            raise DataError(
                f"table {name}: {path.relative_to(data_dir)} is a link that leads out of the "
                f"data directory {data_dir}; refusing to read it"
            )
    if found[0].kind == "parquet_dir":
        _check_partition_keys(found[0])
    return found[0]


def _check_partition_keys(source: TableSource) -> None:
    """Refuse hive partition keys (``region=north/``) that are also columns of the files: which
    of the two values a row has would depend on the reader."""
    for file in source.files():
        keys = [
            part.split("=", 1)[0]
            for part in file.relative_to(source.path).parent.parts
            if "=" in part
        ]
        if not keys:
            continue
        try:
            columns = set(pq.read_schema(file).names)
        except (OSError, pa.ArrowException):
            continue  # an unreadable part file: validation names it
        clash = [k for k in keys if k in columns]
        if clash:
            raise DataError(
                f"table {source.name}: partition key {clash[0]!r} of "
                f"{file.relative_to(source.path)} is also a column of the file: ambiguous, "
                "drop the column from the files or rename the partition folders"
            )


def find_tables(data_dir: Path) -> dict[str, TableSource]:
    """Every contract table present under ``data_dir``."""
    found = {}
    for name in INPUT_TABLES:
        src = find_table(data_dir, name)
        if src is not None:
            found[name] = src
    return found


def scan_raw(source: TableSource, file_column: str | None = None) -> pl.LazyFrame:
    """Scan a table as stored, without casting (CSV columns come in as text).

    ``file_column`` names a column holding each row's part file (directory tables only).
    """
    if source.kind == "csv":
        return pl.scan_csv(source.path, infer_schema=False)
    if source.kind == "parquet_dir":
        return pl.scan_parquet(
            source.path / "**" / "*.parquet",
            hive_partitioning=True,
            include_file_paths=file_column,
        )
    return pl.scan_parquet(source.path)


DEFAULT_TIMEZONE = "UTC"
"""The wall clock of the input tables unless ``data.timezone`` says otherwise."""

UTC_OFFSET = r"(?:[zZ]|[+-]\d{2}:?\d{2})$"
"""A timestamp text that ends in a UTC offset (``+02:00``, ``Z``): an instant, converted."""


def cast_expr(
    column: str, source: pl.DataType, target: pl.DataType, timezone: str = DEFAULT_TIMEZONE
) -> pl.Expr:
    """Cast one column to its contract type, non-strict (failures become null).

    Timestamps end naive, on the wall clock of ``timezone`` (``data.timezone``): a time-zone
    aware column, or a CSV text with an offset (``...+02:00``, ``...Z``), is converted to it; a
    naive one is taken as already on it.
    """
    col = pl.col(column)
    if source == target:
        return col
    if source == pl.String:
        if target == pl.Date:
            return col.str.strip_chars().str.to_date(strict=False).alias(column)
        if isinstance(target, pl.Datetime):
            text = col.str.strip_chars()
            has_offset = text.str.contains(UTC_OFFSET)
            instant = (
                pl.when(has_offset)
                .then(text)
                .str.to_datetime(time_unit=target.time_unit, strict=False, time_zone="UTC")
                .dt.convert_time_zone(timezone)
                .dt.replace_time_zone(None)
            )
            wall = (
                pl.when(~has_offset)
                .then(text)
                .str.to_datetime(time_unit=target.time_unit, strict=False)
            )
            return pl.coalesce(instant, wall).alias(column)
        if target == pl.Int64:
            return _integer_text(col).alias(column)
        return col.str.strip_chars().cast(target, strict=False).alias(column)
    if source.is_float() and target.is_integer():
        return _integral(col).cast(target, strict=False).alias(column)
    if isinstance(target, pl.Datetime) and isinstance(source, pl.Datetime):
        if source.time_zone is not None:  # the instant on the configured wall clock
            col = col.dt.convert_time_zone(timezone)
        # non-strict: a millisecond or second timestamp beyond the microsecond range (year
        # 294247) is null, refused by name, where cast_time_unit panics
        return col.dt.replace_time_zone(None).cast(target, strict=False).alias(column)
    return col.cast(target, strict=False).alias(column)


_INTEGER = r"^[+-]?\d+$"
_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def _integer_text(text: pl.Expr) -> pl.Expr:
    """Integer text read exactly as Int64, digit for digit (never through a float, which
    rounds ids above 2**53 onto their neighbours). ``3.0`` (pandas writes integer columns with
    nulls so) is still 3; ``3.7``, ``1e3`` or a number beyond Int64 is null: refused."""
    digits = text.str.strip_chars().str.replace(r"^([+-]?\d+)\.0*$", "${1}")
    return (
        pl.when(digits.str.contains(_INTEGER))
        .then(digits)
        .otherwise(None)
        .cast(pl.Int64, strict=False)
    )


def _integral(value: pl.Expr) -> pl.Expr:
    """An integer when the number is one (``3.0``), else null (``3.7`` is never truncated)."""
    return pl.when(value == value.floor()).then(value).otherwise(None).cast(pl.Int64, strict=False)


def id_dtype_of(data_dir: Path) -> pl.DataType:
    """The run's customer id type: the stored type of ``customers.customer_id``."""
    src = find_table(data_dir, "customers")
    if src is None:
        return pl.Int64()
    try:
        schema = scan_raw(src).collect_schema()
    except DEPENDENCY_ERRORS:  # unreadable: validation says so
        return pl.Int64()
    dtype = schema.get("customer_id")
    if dtype is not None and dtype.is_integer():
        return pl.Int64()
    if src.kind == "csv" and dtype is not None:
        # numbers are integer ids: a "3.7" among them is then refused, not read as text
        # (a pattern, not a float cast: only which type, never a value, comes from it)
        ids = scan_raw(src).select(pl.col("customer_id").str.strip_chars()).head(1000)
        try:
            ids = ids.collect()["customer_id"].drop_nulls()
        except DEPENDENCY_ERRORS:  # a malformed file: validation says so
            return pl.Int64()
        if ids.str.contains(_NUMBER).all():
            return pl.Int64()
    return pl.String()


def scan_table(
    source: TableSource,
    contract: TableContract,
    id_dtype: pl.DataType = pl.Int64,
    timezone: str = DEFAULT_TIMEZONE,
) -> pl.LazyFrame:
    """Scan a table cast to its contract (extra columns kept with their stored type; an
    optional contract column the file leaves out comes as all null)."""
    lf = scan_raw(source)
    schema = lf.collect_schema()
    target = contract.polars_schema(id_dtype)
    exprs = [
        cast_expr(c, schema[c], t, timezone) if c in schema else pl.lit(None, t).alias(c)
        for c, t in target.items()
        if c in schema or c in contract.optional
    ]
    extras = [pl.col(c) for c in schema if c not in target]
    return lf.select(*exprs, *extras)


def load_tables(data_dir: Path, timezone: str = DEFAULT_TIMEZONE) -> dict[str, pl.LazyFrame]:
    """Every table present, scanned lazily and cast to the contract (no validation);
    timestamps on the wall clock of ``timezone`` (see :func:`cast_expr`)."""
    data_dir = Path(data_dir)
    id_dtype = id_dtype_of(data_dir)
    tables = {}
    for name, src in find_tables(data_dir).items():
        try:
            tables[name] = scan_table(src, INPUT_TABLES[name], id_dtype, timezone)
        except DEPENDENCY_ERRORS as e:
            raise DataError(f"{name} [{src.path.name}]: unreadable ({failure(e)})") from e
    return tables


# --- writing -----------------------------------------------------------------------------
#
# Every output is written into a staging directory with the plain writers below, then committed
# by `crm_engine.commit`: the one place that renames into place, and the one that cleans up.


def _with_metadata(table: pa.Table, metadata: dict[str, str] | None) -> pa.Table:
    if not metadata:
        return table
    existing = table.schema.metadata or {}
    merged = {**existing, **{k.encode(): v.encode() for k, v in metadata.items()}}
    return table.replace_schema_metadata(merged)


WRITE_ROWS = 250_000
"""Rows converted to Arrow and encoded at a time by :func:`write_parquet` (a row group each),
so the Arrow copy of a table being written is one slice, not the whole table. (The 10M run's
write phase still peaks ~5 GB above what the run holds: not this copy alone; not yet found.)"""


PART_FILE = "part-{:05d}.parquet"
"""Name of the ``n``-th part :func:`write_parquet` writes into a directory (``part-00000.parquet``
first: the parts sort in row order, and read back as one table through :func:`find_table`)."""


def write_parquet(
    frame: pl.DataFrame | pl.LazyFrame | Sequence[pl.DataFrame | pl.LazyFrame],
    path: Path,
    metadata: dict[str, str] | None = None,
    *,
    part_rows: int | None = None,
) -> Path:
    """Write ``frame`` to ``path`` (zstd) with ``metadata`` in the file's key-value metadata,
    :data:`WRITE_ROWS` rows at a time (a plan, such as a scan, is collected a slice at a time).
    A sequence of frames or plans (the parts of a table, each with the same columns: the
    executors' files) is written as one table, the parts one after another.

    With ``part_rows``, ``path`` is a directory of parts (:data:`PART_FILE`) of at most
    ``part_rows`` rows each, in row order, every part with the same schema and ``metadata`` (an
    empty frame: one empty part).

    Not atomic by itself: write into a staging directory of :mod:`crm_engine.commit`.
    """
    path = Path(path)
    pieces = [frame] if isinstance(frame, pl.DataFrame | pl.LazyFrame) else list(frame)
    if not pieces:
        raise ValueError(f"nothing to write to {path.name}: no frame")
    schema = _with_metadata(pieces[0].lazy().head(0).collect().to_arrow(), metadata).schema
    rows = (s for piece in pieces for s in slices(piece, WRITE_ROWS) if s.height)
    if part_rows is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(path, schema, compression="zstd") as writer:
            wrote = False
            for rows_slice in rows:
                writer.write_table(rows_slice.to_arrow().cast(schema))
                wrote = True
            if not wrote:
                writer.write_table(schema.empty_table())
        return path
    if part_rows <= 0:
        raise ValueError(f"parts of {part_rows} rows")
    path.mkdir(parents=True, exist_ok=True)
    _write_parts(rows, path, schema, part_rows)
    return path


def _write_parts(
    rows: Iterator[pl.DataFrame], directory: Path, schema: pa.Schema, part_rows: int
) -> None:
    """``rows`` (slices in order) as parts of ``part_rows`` rows at most in ``directory``
    (:data:`PART_FILE`; no rows: one empty part), a slice split where a part ends."""
    writer: pq.ParquetWriter | None = None
    parts, left = 0, 0
    try:
        for rows_slice in rows:
            rest = rows_slice
            while rest.height:
                if writer is None or left == 0:
                    if writer is not None:
                        writer.close()
                    writer = pq.ParquetWriter(
                        directory / PART_FILE.format(parts), schema, compression="zstd"
                    )
                    parts, left = parts + 1, part_rows
                head = rest.head(left)
                writer.write_table(head.to_arrow().cast(schema))
                left, rest = left - head.height, rest.slice(head.height)
        if writer is None:
            writer = pq.ParquetWriter(directory / PART_FILE.format(0), schema, compression="zstd")
            writer.write_table(schema.empty_table())
    finally:
        if writer is not None:
            writer.close()


def frame_height(frame: pl.DataFrame | pl.LazyFrame) -> int:
    """Rows of a frame or of a plan (a scan counts them from the file's metadata)."""
    if isinstance(frame, pl.DataFrame):
        return frame.height
    return int(frame.select(pl.len()).collect().item())


def slices(frame: pl.DataFrame | pl.LazyFrame, rows: int) -> Iterator[pl.DataFrame]:
    """``frame`` ``rows`` rows at a time (one empty slice of an empty frame); of a plan (the
    run's profile waits in a file) each slice is collected in turn, so only one is in
    memory."""
    if rows <= 0:
        raise ValueError(f"slices of {rows} rows")
    if isinstance(frame, pl.DataFrame):
        for start in range(0, max(frame.height, 1), rows):
            yield frame.slice(start, rows)
        return
    for start in range(0, max(frame_height(frame), 1), rows):
        yield frame.slice(start, rows).collect()


def map_slices(
    frame: pl.DataFrame | pl.LazyFrame, fn: Callable[[pl.DataFrame], pl.DataFrame], rows: int
) -> pl.DataFrame:
    """``fn`` over ``frame`` ``rows`` rows at a time (:func:`slices`: of a plan one slice in
    memory at a time), its results stacked in the slices' order."""
    return pl.concat(fn(s) for s in slices(frame, rows))


def in_id_order(ids: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` (one per customer, in any order: what the executors computed) in the order of
    ``ids``' ``customer_id``; rows that are not of exactly those customers are refused."""
    if rows.height != ids.height:
        raise ValueError(f"{rows.height} rows for the profile's {ids.height} customers")
    if ids.get_column("customer_id").equals(rows.get_column("customer_id")):
        return rows
    missing = ids.join(rows, on="customer_id", how="anti").height
    if missing:
        raise ValueError(f"no rows for {missing} of the profile's customers")
    return ids.join(rows, on="customer_id", how="left", maintain_order="left")


def sink_parquet(lf: pl.LazyFrame, path: Path, metadata: dict[str, str] | None = None) -> int:
    """Stream a plan into ``path`` with the streaming engine; returns the rows written.

    ``metadata`` goes both in the file's key-value metadata and in the Arrow schema metadata
    (what ``pyarrow.parquet.read_schema`` shows), as :func:`write_parquet` does.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrow_schema = None
    if metadata:
        empty = pl.DataFrame(schema=lf.collect_schema()).to_arrow()
        arrow_schema = empty.schema.with_metadata(metadata)
    lf.sink_parquet(
        path, compression="zstd", metadata=metadata, arrow_schema=arrow_schema, engine="streaming"
    )
    return pq.read_metadata(path).num_rows


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: Path, payload: object) -> Path:
    """Write ``payload`` as indented JSON (sorted keys, stable for diffs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return path
