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
    id_dtype = frame.schema.get("customer_id", pl.Int64())
    schema = scores_schema(id_dtype)
    cols = []
    for name, dtype in schema.items():
        if name in frame.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    out = frame.select(cols)
    for col in SCORE_COLUMNS:
        if not col.nullable and out[col.name].null_count():
            raise DataError(
                f"scores: column {col.name} has {out[col.name].null_count()} null rows "
                f"of {out.height} (contract {SCORES_CONTRACT} says non-null)"
            )
    dup = out.height - out["customer_id"].n_unique()
    if dup:
        raise DataError(f"scores: {dup} duplicate customer_id rows of {out.height}")
    return out


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
