"""``customers.contract_end_date`` (crm.inputs/v1 minor 1.1): optional, checked, point in time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from crm_engine.contracts import INPUTS_CONTRACT_VERSION
from crm_engine.io import load_tables
from crm_engine.validation import validate
from features.who import who_features
from tests.features._tiny import AS_OF, tiny_frames

D = dt.date


def _write(tmp_path: Path, customers: pl.DataFrame) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    frames = tiny_frames()
    frames["customers"] = customers
    for name, df in frames.items():
        df.write_parquet(data / f"{name}.parquet")
    return data


def _customers() -> pl.DataFrame:
    return tiny_frames()["customers"]


def test_a_file_without_the_column_is_valid_and_reads_it_as_null(tmp_path: Path) -> None:
    assert INPUTS_CONTRACT_VERSION == "1.1"
    data = _write(tmp_path, _customers().drop("contract_end_date"))
    report = validate(data)
    assert report.errors == []
    customers = load_tables(data)["customers"].collect()
    assert customers["contract_end_date"].dtype == pl.Date
    assert customers["contract_end_date"].null_count() == customers.height


def test_contract_end_before_signup_and_on_prepaid_are_counted_warnings(
    tmp_path: Path,
) -> None:
    c = _customers()
    postpaid = c["plan_type"] == "postpaid"
    first_post = int(postpaid.arg_true()[0])
    first_pre = int((~postpaid).arg_true()[0])
    ends = [None] * c.height
    ends[first_post] = c["signup_date"][first_post] - dt.timedelta(days=1)
    ends[first_pre] = D(2030, 1, 1)
    data = _write(tmp_path, c.with_columns(pl.Series("contract_end_date", ends, pl.Date)))
    report = validate(data)
    assert report.errors == []
    got = {p.message: p.rows for p in report.warnings if p.column == "contract_end_date"}
    assert got == {
        "contract_end_date before signup_date": 1,
        "contract_end_date on a prepaid customer (ignored)": 1,
    }


def test_a_term_that_ends_after_today_is_valid(tmp_path: Path) -> None:
    """Unlike other dates, a minimum term may end in the future (a 24-month contract)."""
    c = _customers().with_columns(
        pl.when(pl.col("plan_type") == "postpaid")
        .then(pl.lit(dt.date.today() + dt.timedelta(days=700)))
        .alias("contract_end_date")
    )
    report = validate(_write(tmp_path, c))
    assert [p for p in report.problems if p.column == "contract_end_date"] == []


def test_a_contract_end_that_is_not_a_date_is_refused_by_name(tmp_path: Path) -> None:
    c = _customers().with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit("31/02/2025"))
        .otherwise(pl.col("contract_end_date").cast(pl.String))
        .alias("contract_end_date")
    )
    data = tmp_path / "data"
    data.mkdir()
    for name, df in tiny_frames().items():
        if name == "customers":
            c.write_csv(data / "customers.csv")
        else:
            df.write_parquet(data / f"{name}.parquet")
    report = validate(data)
    [err] = [p for p in report.errors if p.column == "contract_end_date"]
    assert err.table == "customers" and err.file == "customers.csv" and err.rows == 1
    assert "cannot be read as Date" in err.message


@pytest.mark.parametrize("shift_days", [0, 400])
def test_days_to_contract_end_is_known_at_as_of(shift_days: int) -> None:
    """``contract_days_left`` counts from as_of to the end of a postpaid customer's term (the
    term is agreed at signup); prepaid customers have none; moving as_of moves it."""
    c = _customers().with_columns(
        pl.when(pl.col("plan_type") == "postpaid")
        .then(pl.col("signup_date").dt.offset_by("2y"))
        .alias("contract_end_date")
    )
    as_of = AS_OF + dt.timedelta(days=shift_days)
    got = who_features(c.lazy(), as_of).collect().join(c, on="customer_id")
    post = got.filter(pl.col("plan_type") == "postpaid")
    want = (post["contract_end_date"] - pl.lit(as_of)).dt.total_days()
    assert post.height > 0
    assert post["contract_days_left"].to_list() == post.select(want).to_series().to_list()
    assert got.filter(pl.col("plan_type") == "prepaid")["contract_days_left"].null_count() == (
        got.filter(pl.col("plan_type") == "prepaid").height
    )
