"""Validation on Spark (:class:`pipelines.spark.validation.SparkReader`) finds what the local
validation finds: the same tables and rows, the same problems (counts, examples and files), the
same as_of; on hostile data, on Parquet parts, CSV and hive-partitioned directories."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from crm_engine.commit import FAULT_ENV
from crm_engine.validation import MIN_CUSTOMERS, validate
from features import default_as_of
from pipelines.spark.validation import KILL_IN_VALIDATION
from tests.crm_engine.test_validation import _tables, run_validate, write

D = dt.date
T = dt.datetime


def _both(spark: Any, data: Path, **kwargs: Any) -> tuple[Any, Any]:
    from pipelines.spark.validation import SparkReader

    local = validate(data, **kwargs)
    remote = validate(data, reader=SparkReader(spark), **kwargs)
    return local, remote


def _same(local: Any, remote: Any) -> None:
    assert [str(p) for p in remote.problems] == [str(p) for p in local.problems]
    assert remote.problems == local.problems
    assert remote.tables == local.tables
    assert remote.as_of == local.as_of


def _hostile(tables: dict[str, pl.DataFrame]) -> None:
    """Most defects at once: every table's row checks, a repeated id, unknown customers."""
    tables["customers"] = tables["customers"].with_columns(
        pl.Series("customer_id", [1, 2, 2, None], pl.Int64),
        pl.Series("plan_type", ["prepaid", "gold", "postpaid", "prepaid"]),
        pl.Series("churn_date", [None, D(2021, 1, 1), None, None], pl.Date),
    )
    tables["transactions"] = tables["transactions"].with_columns(
        pl.Series("customer_id", [1, 1, 2, 99, 98]),
        pl.Series("amount", ["10", "x", "-40", "oops", "5"]),
    )
    tables["surveys"] = tables["surveys"].with_columns(pl.Series("nps", [11, -1]))
    tables["network"] = tables["network"].with_columns(pl.Series("coverage_5g_share", [3.5]))
    tables["interactions"] = tables["interactions"].with_columns(
        pl.Series("closed_at", [T(2023, 1, 1), None], pl.Datetime("us"))
    )
    tables["calls"] = tables["calls"].with_columns(pl.Series("callee_id", [1, 77]))


def test_hostile_data_is_refused_alike(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With too little to model too: two customers (a null and a repeated id among the
    four rows) bought before as_of. The Python worker of the first validation task is killed
    (SIGKILL): Spark retries the task, and the report is the same."""
    data = write(tmp_path, _hostile)
    claim = tmp_path / "worker-killed"
    monkeypatch.setenv(FAULT_ENV, f"{KILL_IN_VALIDATION}@{claim}")
    local, remote = _both(spark, data, as_of=D(2023, 3, 1), min_customers=MIN_CUSTOMERS)
    assert claim.exists()  # a worker was killed, and validation went on
    assert len(local.errors) >= 6 and local.warnings  # the cases above are all found
    assert {p.table for p in local.problems} >= {"customers", "transactions", "calls", "surveys"}
    assert any("too little to model" in p.message for p in local.errors)
    _same(local, remote)


def test_valid_parts_csv_and_partitions_date_the_run_alike(spark: Any, tmp_path: Path) -> None:
    """A table of Parquet parts of several row groups, a CSV table with a bad date, a hive-
    partitioned table; the run dated from the transactions; enough to model checked."""
    data = write(tmp_path)
    tables = _tables()
    (data / "transactions.parquet").unlink()
    parts = data / "transactions"
    parts.mkdir()
    tables["transactions"].head(3).write_parquet(parts / "part-0.parquet", row_group_size=2)
    tables["transactions"].tail(2).write_parquet(parts / "part-1.parquet", row_group_size=1)
    (data / "customers.parquet").unlink()
    customers = tables["customers"].with_columns(pl.col("signup_date").cast(pl.String))
    customers = customers.with_columns(
        pl.when(pl.col("customer_id") == 3)
        .then(pl.lit("31/02/2023"))
        .otherwise(pl.col("signup_date"))
        .alias("signup_date")
    )
    customers.write_csv(data / "customers.csv")
    (data / "usage.parquet").unlink()
    for month, rows in tables["usage"].group_by("month"):
        where = data / "usage" / f"month={month[0]}"
        where.mkdir(parents=True)
        rows.drop("month").write_parquet(where / "part-0.parquet")
    local, remote = _both(spark, data, min_customers=2, default_as_of=default_as_of)
    assert local.as_of == D(2023, 7, 1)
    assert [p.column for p in local.errors] == ["signup_date"]
    _same(local, remote)


def test_the_validate_command_on_spark_prints_what_it_prints_locally(
    spark: Any, tmp_path: Path
) -> None:
    """``crm-engine validate --backend spark``: the same table, problems and exit code, and
    nothing written (the test session is active, so the command uses it and leaves it)."""
    data = write(tmp_path, _hostile)
    local = run_validate(data, "--as-of", "2023-03-01")
    remote = run_validate(data, "--as-of", "2023-03-01", "--backend", "spark")
    assert local[0] == remote[0] == 1
    assert remote[1] == local[1]
    assert "duplicate customer_id" in " ".join(local[1].split())
