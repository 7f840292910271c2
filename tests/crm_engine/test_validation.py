"""Validation: one test per error and warning class, through the CLI, with nothing written."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from crm_engine.cli import app
from crm_engine.contracts import ALLOWED_VALUES, INPUT_TABLES
from crm_engine.validation import validate

runner = CliRunner()
D = dt.date
T = dt.datetime


def _tables() -> dict[str, pl.DataFrame]:
    """A tiny valid operator: 4 customers, every table present."""
    return {
        "customers": pl.DataFrame(
            {
                "customer_id": [1, 2, 3, 4],
                "signup_date": [D(2022, 1, 5), D(2022, 3, 1), D(2023, 2, 1), D(2023, 5, 9)],
                "birth_date": [D(1990, 1, 1), None, D(1950, 6, 1), D(2001, 2, 2)],
                "gender": ["f", "m", None, "f"],
                "occupation": ["employee", "business", "retired", None],
                "region": ["north", "south", "north", "capital"],
                "area_type": ["urban", "urban", "rural", None],
                "plan_type": ["prepaid", "postpaid", "postpaid", "prepaid"],
                "churn_date": [None, None, D(2023, 9, 10), None],
            }
        ),
        "transactions": pl.DataFrame(
            {
                "customer_id": [1, 1, 2, 3, 4],
                "ts": [
                    T(2023, 1, 2, 10),
                    T(2023, 2, 3, 9),
                    T(2023, 3, 1),
                    T(2023, 4, 1),
                    T(2023, 6, 1),
                ],
                "amount": [10.0, 15.0, 40.0, 25.0, 5.0],
                "category": ["topup", "topup", "bill", "bill", "topup"],
                "channel": ["app", "app", "online", "store", "app"],
            }
        ),
        "usage": pl.DataFrame(
            {
                "customer_id": [1, 2],
                "month": [D(2023, 1, 1), D(2023, 1, 1)],
                "data_mb": [1000.0, 200.0],
                "voice_min": [30.0, 300.0],
                "sms": [5.0, 1.0],
            }
        ),
        "network": pl.DataFrame(
            {
                "customer_id": [1],
                "month": [D(2023, 1, 1)],
                "dropped_call_rate": [0.01],
                "call_setup_success_rate": [0.99],
                "avg_download_mbps": [50.0],
                "latency_ms": [30.0],
                "packet_loss_pct": [0.2],
                "coverage_5g_share": [0.6],
            }
        ),
        "interactions": pl.DataFrame(
            {
                "customer_id": [1, 3],
                "opened_at": [T(2023, 1, 5), T(2023, 5, 5)],
                "closed_at": [T(2023, 1, 6), None],
                "channel": ["phone", "store"],
                "kind": ["complaint", "inquiry"],
                "topic": ["network", "billing"],
                "satisfaction": [2, None],
            }
        ),
        "surveys": pl.DataFrame(
            {
                "customer_id": [1, 2],
                "answered_at": [T(2023, 2, 1), T(2023, 3, 1)],
                "nps": [9, 3],
                "csat": [5, None],
            }
        ),
        "calls": pl.DataFrame(
            {
                "caller_id": [1, 2],
                "callee_id": [2, 3],
                "month": [D(2023, 1, 1), D(2023, 2, 1)],
                "n_calls": [4, 1],
                "minutes": [12.5, 3.0],
            }
        ),
    }


def write(tmp: Path, edit: Callable[[dict[str, pl.DataFrame]], None] | None = None) -> Path:
    tables = _tables()
    if edit:
        edit(tables)
    data = tmp / "data"
    data.mkdir()
    for name, df in tables.items():
        df.write_parquet(data / f"{name}.parquet")
    return data


def snapshot(path: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in path.rglob("*")}


def run_validate(data: Path, *extra: str) -> tuple[int, str]:
    before = snapshot(data.parent)
    result = runner.invoke(app, ["validate", str(data), *extra])
    assert snapshot(data.parent) == before, "validate must not write anything"
    return result.exit_code, result.output


def test_valid_data_passes(tmp_path: Path) -> None:
    code, out = run_validate(write(tmp_path))
    assert code == 0, out
    assert "valid" in out
    report = validate(tmp_path / "data")
    assert {t.name: t.rows for t in report.tables}["transactions"] == 5


def test_csv_and_partitioned_directories_are_read(tmp_path: Path) -> None:
    data = write(tmp_path)
    tables = _tables()
    (data / "transactions.parquet").unlink()
    tables["transactions"].write_csv(data / "transactions.csv")
    (data / "usage.parquet").unlink()
    (data / "usage").mkdir()
    tables["usage"].head(1).write_parquet(data / "usage" / "part-0.parquet")
    tables["usage"].tail(1).write_parquet(data / "usage" / "part-1.parquet")
    report = validate(data)
    assert report.ok, [str(p) for p in report.errors]
    rows = {t.name: t.rows for t in report.tables}
    assert rows["transactions"] == 5 and rows["usage"] == 2


def _drop_table(name: str) -> Callable[[dict[str, pl.DataFrame]], None]:
    def edit(tables: dict[str, pl.DataFrame]) -> None:
        del tables[name]

    return edit


ERRORS: dict[str, tuple[Callable[[dict[str, pl.DataFrame]], None], list[str]]] = {
    "missing_required_table": (
        _drop_table("transactions"),
        ["transactions", "required table missing"],
    ),
    "missing_column": (
        lambda t: t.__setitem__("customers", t["customers"].drop("region")),
        ["customers", "region", "missing required column"],
    ),
    "uncastable_column": (
        lambda t: t.__setitem__(
            "transactions",
            t["transactions"].with_columns(pl.Series("amount", ["10", "x", "40", "oops", "5"])),
        ),
        ["transactions", "amount", "cannot be read as Float64", "2 rows", "customer_id=1"],
    ),
    "null_customer_id": (
        lambda t: t.__setitem__(
            "customers",
            t["customers"].with_columns(pl.Series("customer_id", [1, None, 3, 4], pl.Int64)),
        ),
        ["customers", "customer_id", "null values not allowed", "1 rows", "row 1"],
    ),
    "duplicate_customer_id": (
        lambda t: t.__setitem__(
            "customers", t["customers"].with_columns(pl.Series("customer_id", [1, 2, 2, 4]))
        ),
        ["customers", "customer_id", "duplicate customer_id", "2 rows", "customer_id=2"],
    ),
    "null_timestamp": (
        lambda t: t.__setitem__(
            "transactions",
            t["transactions"].with_columns(
                pl.when(pl.col("customer_id") == 2).then(None).otherwise(pl.col("ts")).alias("ts")
            ),
        ),
        ["transactions", "ts", "null values not allowed", "1 rows", "customer_id=2"],
    ),
    "null_key_elsewhere": (
        lambda t: t.__setitem__(
            "surveys",
            t["surveys"].with_columns(pl.Series("customer_id", [None, 2], pl.Int64)),
        ),
        ["surveys", "customer_id", "null values not allowed"],
    ),
    "closed_before_opened": (
        lambda t: t.__setitem__(
            "interactions",
            t["interactions"].with_columns(
                pl.Series("closed_at", [T(2023, 1, 1), None], pl.Datetime("us"))
            ),
        ),
        ["interactions", "closed_at", "closed_at before opened_at", "1 rows", "customer_id=1"],
    ),
    "nps_out_of_range": (
        lambda t: t.__setitem__("surveys", t["surveys"].with_columns(pl.Series("nps", [11, -1]))),
        ["surveys", "nps", "nps outside 0-10", "2 rows"],
    ),
    "coverage_share_of_3.5": (
        lambda t: t.__setitem__(
            "network", t["network"].with_columns(pl.Series("coverage_5g_share", [3.5]))
        ),
        [
            "network",
            "coverage_5g_share",
            "coverage_5g_share outside 0-1",
            "1 rows",
            "customer_id=1",
        ],
    ),
    "empty_required_table": (
        lambda t: t.__setitem__("transactions", t["transactions"].clear()),
        ["transactions", "required table is empty"],
    ),
    "bad_plan_type": (
        lambda t: t.__setitem__(
            "customers",
            t["customers"].with_columns(
                pl.Series("plan_type", ["prepaid", "gold", "postpaid", "prepaid"])
            ),
        ),
        ["customers", "plan_type", "value not in", "customer_id=2"],
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_error_classes(tmp_path: Path, case: str) -> None:
    edit, parts = ERRORS[case]
    code, out = run_validate(write(tmp_path, edit))
    assert code == 1, out
    flat = " ".join(out.split())
    for part in parts:
        assert part in flat, f"{part!r} not in output:\n{out}"


RANGED = [(t.name, c) for t in INPUT_TABLES.values() for c in t.ranges]


@pytest.mark.parametrize(("table", "column"), RANGED, ids=[f"{t}.{c}" for t, c in RANGED])
def test_values_outside_their_declared_range(tmp_path: Path, table: str, column: str) -> None:
    """Every declared range is checked: one value past it is refused (or, for a policy such as
    refunds, warned) by table, column, count and example key."""
    rng = INPUT_TABLES[table].ranges[column]
    bad = rng.high + 1 if rng.high is not None else rng.low - 1  # type: ignore[operator]

    def edit(t: dict[str, pl.DataFrame]) -> None:
        frame = t[table]
        first = pl.int_range(pl.len()) == 0
        value = pl.lit(bad).cast(frame.schema[column])
        t[table] = frame.with_columns(
            pl.when(first).then(value).otherwise(pl.col(column)).alias(column)
        )

    data = write(tmp_path, edit)
    [problem] = [p for p in validate(data).problems if p.column == column]
    assert problem.severity == ("error" if rng.policy is None else "warning")
    assert (problem.table, problem.file, problem.rows) == (table, f"{table}.parquet", 1)
    assert problem.message == rng.message(column)
    assert problem.examples[0].startswith(INPUT_TABLES[table].keys[0] + "=")
    code, out = run_validate(data)
    assert code == (1 if rng.policy is None else 0), out
    assert f"{table} [{table}.parquet] column {column}: {rng.message(column)}: 1 rows" in " ".join(
        out.split()
    )


def test_validate_prints_the_declared_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    from crm_engine.cli._app import console

    monkeypatch.setattr(console, "width", 200)  # one line per column
    result = runner.invoke(app, ["validate", "--contract"])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()]
    for table, column in RANGED:
        rng = INPUT_TABLES[table].ranges[column]
        assert any(line.startswith(f"{table} {column} ") and rng.label() in line
                   for line in lines), (table, column)  # fmt: skip
    assert (
        "calls caller_id int64 no customer key; equal to callee_id: warned as self-calls "
        "(callee_id equals caller_id): left out of the call graph" in lines
    )


def test_truncated_file_is_an_error(tmp_path: Path) -> None:
    data = write(tmp_path)
    p = data / "surveys.parquet"
    blob = p.read_bytes()
    p.write_bytes(blob[: len(blob) // 2])
    code, out = run_validate(data)
    assert code == 1
    flat = " ".join(out.split())
    assert "surveys" in flat and "unreadable or truncated" in flat


def test_uncastable_csv_names_the_file(tmp_path: Path) -> None:
    data = write(tmp_path)
    (data / "customers.parquet").unlink()
    df = _tables()["customers"].with_columns(pl.col("signup_date").cast(pl.String))
    df = df.with_columns(
        pl.when(pl.col("customer_id") == 3)
        .then(pl.lit("31/02/2023"))
        .otherwise(pl.col("signup_date"))
        .alias("signup_date")
    )
    df.write_csv(data / "customers.csv")
    report = validate(data)
    [err] = [p for p in report.errors if p.column == "signup_date"]
    assert err.file == "customers.csv" and err.rows == 1 and err.examples == ("customer_id=3",)


WARNINGS: dict[str, tuple[Callable[[dict[str, pl.DataFrame]], None], str, int]] = {
    "refunds": (
        lambda t: t.__setitem__(
            "transactions",
            t["transactions"].with_columns(pl.Series("amount", [10.0, -15.0, 40.0, -1.0, 5.0])),
        ),
        "refunds (negative amounts)",
        2,
    ),
    "unknown_customers": (
        lambda t: t.__setitem__(
            "transactions",
            t["transactions"].with_columns(pl.Series("customer_id", [1, 1, 2, 99, 98])),
        ),
        "rows for customers not in customers (2 ids)",
        2,
    ),
    "self_call": (
        lambda t: t.__setitem__("calls", t["calls"].with_columns(pl.Series("callee_id", [1, 3]))),
        "self-calls (callee_id equals caller_id): left out of the call graph",
        1,
    ),
    "churn_before_signup": (
        lambda t: t.__setitem__(
            "customers",
            t["customers"].with_columns(
                pl.Series("churn_date", [None, D(2021, 1, 1), None, None], pl.Date)
            ),
        ),
        "churn_date before signup_date",
        1,
    ),
}


@pytest.mark.parametrize("case", sorted(WARNINGS))
def test_warning_classes(tmp_path: Path, case: str) -> None:
    edit, message, rows = WARNINGS[case]
    data = write(tmp_path, edit)
    code, out = run_validate(data)
    assert code == 0, out
    [w] = [p for p in validate(data).warnings if p.message == message]
    assert w.rows == rows
    assert message.split(" (")[0] in " ".join(out.split())


def test_rows_after_as_of_are_a_warning(tmp_path: Path) -> None:
    data = write(tmp_path)
    code, out = run_validate(data, "--as-of", "2023-03-01")
    assert code == 0
    report = validate(data, D(2023, 3, 1))
    after = {p.table: p.rows for p in report.warnings if "on or after as_of" in p.message}
    assert after["transactions"] == 3  # 2023-03-01, 04-01, 06-01
    assert after["customers"] == 1  # only customer 4 signed up on or after 2023-03-01
    assert "on or after as_of" in " ".join(out.split())


def test_missing_directory(tmp_path: Path) -> None:
    """A directory that is not there is a usage error that names it, like --data elsewhere:
    no empty validation table before it, nothing created."""
    result = runner.invoke(app, ["validate", str(tmp_path / "nope")])
    assert result.exit_code == 2
    flat = "".join(result.output.replace("│", "").split())  # the box may wrap a long path
    assert "doesnotexist" in flat and "nope" in flat
    assert "Input validation" not in result.output
    assert not (tmp_path / "nope").exists()
    assert os.listdir(tmp_path) == []


def test_a_directory_that_cannot_be_read_is_one_error_line(tmp_path: Path) -> None:
    """A table there twice (a file and a directory): the directory as a whole is refused, in
    one line on stderr, with no empty validation table before it."""
    (tmp_path / "customers").mkdir()
    (tmp_path / "customers.csv").write_text("customer_id\n1\n")
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: table customers in ")
    assert "customers/ and customers.csv: ambiguous" in lines[0]


# --- property: any single bad cell is refused by name or warned with a count ---------------


class Text(str):
    """A cell written as text: its table is written as CSV, every column as text."""


EDGE = "int64 edge"
"""A timestamp at the int64 limit (year 294247), as a corrupt export decodes."""
MS_EDGE = "ms past the us range"
"""A millisecond timestamp no microsecond timestamp can hold (the column stored in ms)."""
PARTNER = "the row's other key"
"""The value of the row's other key column: a call to oneself."""
SIBLING = "another customer's id"
"""The id of another row of customers: a duplicate."""


def _bad_values(table: str, column: str) -> list[object]:
    """Values that break the contract of ``table.column``: out of range or malformed."""
    contract = INPUT_TABLES[table]
    dtype = contract.schema[column]
    bad: list[object] = [] if column in contract.nullable else [None]
    if column in contract.keys:
        bad += [Text("1.5"), Text("99999999999999999999")]
        # text ids in customers are string ids (legitimate): only elsewhere is "12 345" bad
        bad += [SIBLING] if table == "customers" else [987_654, Text("12 345")]
        bad += [PARTNER for pair in contract.self_pairs if column in pair]
        return bad
    if dtype.is_float():
        bad += [float("nan"), float("inf"), float("-inf"), Text("1,5"), Text("x"), Text("1e400")]
    elif dtype.is_integer():
        bad += [Text("x"), Text("2.5"), Text("99999999999999999999")]
    elif dtype.is_temporal():
        bad += [D(1850, 1, 1), Text("2023-02-30"), Text("yesterday")]
        if column not in contract.may_be_future:
            bad.append(D(2999, 1, 1))
        if isinstance(dtype, pl.Datetime):
            bad += [EDGE, MS_EDGE]
    elif dtype == pl.String:
        bad.append("x" * 300)
        if (table, column) in ALLOWED_VALUES:
            bad.append("gold")
    rng = contract.ranges.get(column)
    if rng is not None:
        step = 1 if dtype.is_integer() else 0.5
        if rng.low is not None:
            bad += [rng.low - step, -(2**62) if dtype.is_integer() else -1e300]
        if rng.high is not None:
            bad += [rng.high + step, 2**62 if dtype.is_integer() else 1e300]
    return bad


CELLS = [
    (t, c, v) for t, contract in INPUT_TABLES.items() for c in contract.schema
    for v in _bad_values(t, c)
]  # fmt: skip


def _put(tables: dict[str, pl.DataFrame], table: str, column: str, row: int, value: object) -> bool:
    """Write ``value`` into one cell; True when the table is to be written as CSV."""
    frame = tables[table]
    if column not in frame.columns:  # an optional column the tiny operator leaves out
        frame = frame.with_columns(pl.lit(None, INPUT_TABLES[table].schema[column]).alias(column))
    dtype = frame.schema[column]
    if value == PARTNER:
        other = next(b if a == column else a for a, b in INPUT_TABLES[table].self_pairs)
        cell = pl.col(other)
    elif value == SIBLING:
        cell = pl.lit(frame[column][(row + 1) % frame.height])
    elif value == EDGE:
        cell = pl.lit(2**63 - 1).cast(pl.Datetime("us"))
    elif value == MS_EDGE:
        dtype = pl.Datetime("ms")
        frame = frame.with_columns(pl.col(column).cast(dtype))
        cell = pl.lit(2**62).cast(dtype)
    elif isinstance(value, Text):
        frame, dtype = frame.with_columns(pl.all().cast(pl.String)), pl.String()
        cell = pl.lit(str(value))
    else:
        cell = pl.lit(value, allow_object=False).cast(dtype, strict=False)
    at = pl.int_range(pl.len()) == row
    tables[table] = frame.with_columns(
        pl.when(at).then(cell).otherwise(pl.col(column)).cast(dtype).alias(column)
    )
    return isinstance(value, Text)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cell=st.sampled_from(CELLS), row=st.integers(0, 3))
def test_any_bad_cell_is_refused_by_name_or_warned_with_a_count(
    tmp_path_factory: pytest.TempPathFactory, cell: tuple[str, str, object], row: int
) -> None:
    """One cell of one table replaced by an out-of-range or malformed value: validation names
    it (table, file, column, count), as an error or a counted warning, never a traceback."""
    table, column, value = cell
    tables = _tables()
    row %= tables[table].height
    as_csv = _put(tables, table, column, row, value)
    data = tmp_path_factory.mktemp("cell") / "data"
    data.mkdir()
    for name, frame in tables.items():
        if as_csv and name == table:
            frame.write_csv(data / f"{name}.csv")
        else:
            frame.write_parquet(data / f"{name}.parquet")

    report = validate(data)
    named = {column} | {b if a == column else a for a, b in INPUT_TABLES[table].self_pairs
                        if column in (a, b)}  # fmt: skip
    hits = [p for p in report.problems if p.table == table and p.column in named and p.rows >= 1]
    assert hits, (cell, row, [str(p) for p in report.problems])
    file = f"{table}.csv" if as_csv else f"{table}.parquet"
    assert all(p.file == file for p in hits), [str(p) for p in hits]
