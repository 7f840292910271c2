"""The `crm.scores/v1` output: conform a frame to the contract, check a written file against it."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from crm_engine.contracts import SCORE_COLUMNS, SCORES_CONTRACT, scores_schema
from crm_engine.io import DataError, TableSource, find_table

SCORES_TABLE = "scores"
"""A run's scores: ``scores.parquet``, or the ``scores/`` directory of parts when
``output.single_file`` is off (:func:`crm_engine.io.table_path`)."""
PROFILES_TABLE = "profiles"
"""A run's customer profiles, written in the same form as its scores."""
METADATA_KEYS = (
    "crm.contract",
    "crm.contract_version",
    "crm.run_id",
    "crm.as_of",
    "crm.model_versions",
)


def conform_scores(frame: pl.DataFrame) -> pl.DataFrame:
    """Select, cast and order the contract columns; absent value columns become typed nulls.

    Raises
    ------
    DataError
        If a non-null column has nulls or a customer appears twice.
    """
    out = conformed(frame)
    check_contract_counts(contract_counts(out))
    return out


def conformed(frame: pl.DataFrame) -> pl.DataFrame:
    """The contract columns of ``frame``, cast and in contract order, absent ones typed nulls
    (no check: :func:`contract_counts`). A pure function of a slice: a part of the scores is
    conformed where it lies."""
    id_dtype = frame.schema.get("customer_id", pl.Int64())
    return frame.select(
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in scores_schema(id_dtype).items()
    )


def contract_counts(frame: pl.DataFrame) -> pl.DataFrame:
    """What the contract forbids in a :func:`conformed` slice, counted in one row: ``rows``,
    ``duplicates`` (rows beyond the first of a ``customer_id``) and the nulls of each non-null
    column. Partial counts: a step over every part adds them up
    (:func:`check_contract_counts`), each customer lying in one part."""
    return frame.select(
        pl.len().cast(pl.Int64).alias("rows"),
        (pl.len() - pl.col("customer_id").n_unique()).cast(pl.Int64).alias("duplicates"),
        *(
            pl.col(c.name).null_count().cast(pl.Int64).alias(c.name)
            for c in SCORE_COLUMNS
            if not c.nullable
        ),
    )


def check_contract_counts(counts: pl.DataFrame) -> None:
    """Refuse scores whose :func:`contract_counts` (of every part) break the contract.

    Raises
    ------
    DataError
        A non-null column with nulls, or a customer twice: the first found, with the counts.
    """
    total = counts.sum().row(0, named=True)
    rows = int(total.pop("rows") or 0)
    duplicates = int(total.pop("duplicates") or 0)
    for name, nulls in total.items():
        if nulls:
            raise DataError(
                f"scores: column {name} has {nulls} null rows "
                f"of {rows} (contract {SCORES_CONTRACT} says non-null)"
            )
    if duplicates:
        raise DataError(f"scores: {duplicates} duplicate customer_id rows of {rows}")


def check_scores_file(path: Path) -> list[str]:
    """Compare a written scores file with the declared contract; return the differences. Of a
    directory of parts, the differences of each part, named by it."""
    path = Path(path)
    if path.is_dir():
        parts = sorted(p for p in path.glob("*.parquet") if p.is_file())
        if not parts:
            return [f"{path.name}/ holds no Parquet part"]
        return [f"{p.name}: {problem}" for p in parts for problem in check_scores_file(p)]
    problems: list[str] = []
    schema = pl.read_parquet_schema(path)
    id_dtype = schema.get("customer_id", pl.Int64())
    expected = scores_schema(id_dtype)
    if list(schema) != list(expected):
        problems.append(f"columns {list(schema)} != contract {list(expected)}")
    for name, dtype in expected.items():
        if name in schema and schema[name] != dtype:
            problems.append(f"column {name}: {schema[name]} != contract {dtype}")
    meta = {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items()}
    for key in METADATA_KEYS:
        if key not in meta:
            problems.append(f"metadata key {key} missing")
    if meta.get("crm.contract") not in (None, SCORES_CONTRACT):
        problems.append(f"metadata crm.contract={meta.get('crm.contract')} != {SCORES_CONTRACT}")
    if "crm.model_versions" in meta:
        try:
            json.loads(meta["crm.model_versions"])
        except json.JSONDecodeError:
            problems.append("metadata crm.model_versions is not JSON")
    return problems


def read_scores_metadata(path: Path) -> dict[str, str]:
    """The crm.* key-value metadata of a scores file."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"crm.")}


def run_scores(run_dir: Path) -> TableSource | None:
    """The scores a committed run wrote, in either form (None when it wrote none): its
    ``path.name`` is their key in the run's manifest ``outputs``, its ``files()`` the parts."""
    return find_table(Path(run_dir), SCORES_TABLE)
