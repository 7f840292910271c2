"""Bad input: refused by name (table, file, column, count, example) on one line, or converted and
said so; never a traceback, never passed silently into a score, nothing written."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from crm_engine.cli import app
from crm_engine.io import load_tables

AS_OF = "2024-10-01"
Mutate = Callable[[Path], None]


def _part(data: Path, table: str) -> Path:
    return data / table / "part-00000.parquet"


def _edit(table: str, *exprs: pl.Expr) -> Mutate:
    """Rewrite the first part file of ``table`` with ``exprs`` applied."""

    def mutate(data: Path) -> None:
        path = _part(data, table)
        pl.read_parquet(path).with_columns(*exprs).write_parquet(path)

    return mutate


def _first_row(value: object, column: str) -> pl.Expr:
    first = pl.int_range(pl.len()) == 0
    return pl.when(first).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)


def _as_csv(table: str, **write: object) -> Mutate:
    """Replace a directory table by one CSV file (``write`` passed to ``write_csv``)."""

    def mutate(data: Path) -> None:
        frame = pl.read_parquet(data / table / "*.parquet")
        shutil.rmtree(data / table)
        frame.write_csv(data / f"{table}.csv", **write)  # type: ignore[arg-type]

    return mutate


def _truncate(data: Path) -> None:
    path = _part(data, "transactions")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _link_out(data: Path) -> None:
    secret = data.parent / "secret.csv"
    secret.write_text("customer_id,hunter2_column\n1,hunter2\n")
    shutil.rmtree(data / "surveys")
    (data / "surveys.csv").symlink_to(secret)


def _both_forms(data: Path) -> None:
    pl.read_parquet(data / "usage" / "*.parquet").write_csv(data / "usage.csv")


def _no_customer_id(data: Path) -> None:
    _as_csv("customers")(data)
    path = data / "customers.csv"
    pl.read_csv(path).drop("customer_id").write_csv(path)


def _id_not_integral(data: Path) -> None:
    _as_csv("customers")(data)
    path = data / "customers.csv"
    frame = pl.read_csv(path, infer_schema=False)
    frame.with_columns(_first_row("3.7", "customer_id")).write_csv(path)


def _id_beyond_int64(data: Path) -> None:
    _as_csv("customers")(data)
    path = data / "customers.csv"
    frame = pl.read_csv(path, infer_schema=False)
    frame.with_columns(_first_row("99999999999999999999", "customer_id")).write_csv(path)


def _ms_at_the_edge(data: Path) -> None:
    """Millisecond timestamps near the int64 limit: beyond microseconds (cast_time_unit panicked
    on them inside validation, a traceback even with --as-of)."""
    _edit("transactions", pl.col("ts").dt.cast_time_unit("ms"))(data)
    _edit("transactions", _first_row(None, "ts").fill_null(pl.lit(2**62).cast(pl.Datetime("ms"))))(
        data
    )


def _hive_clash(data: Path) -> None:
    part = _part(data, "transactions")
    (part.parent / "category=topup").mkdir()
    part.rename(part.parent / "category=topup" / part.name)


def _ids_do_not_match(data: Path) -> None:
    _edit("transactions", pl.col("customer_id") + 50_000_000)(data)


# (name, mutation, what the one error line must say)
REFUSED: list[tuple[str, Mutate, tuple[str, ...]]] = [
    ("nan", _edit("transactions", _first_row(float("nan"), "amount")),
     ("transactions [transactions/part-00000.parquet] column amount", "NaN or infinite", "1 rows",
      "customer_id=")),
    ("inf", _edit("network", _first_row(float("inf"), "latency_ms")),
     ("network [network/part-00000.parquet] column latency_ms", "NaN or infinite")),
    ("before 1900", _edit("transactions", _first_row(dt.datetime(1850, 1, 1), "ts")),
     ("column ts", "dated before 1900-01-01", "1 rows")),
    ("after today", _edit("transactions", _first_row(dt.datetime(2099, 1, 1), "ts")),
     ("column ts", "dated after today")),
    ("huge text", _edit("customers", _first_row("x" * 5_000_000, "occupation")),
     ("customers [customers/part-00000.parquet] column occupation", "longer than 256 bytes")),
    ("id 3.7", _id_not_integral, ("customers [customers.csv] column customer_id",
                                   "cannot be read as Int64", "1 rows")),
    ("id beyond int64", _id_beyond_int64,
     ("customers [customers.csv] column customer_id", "cannot be read as Int64", "1 rows",
      "row 0")),
    ("ms timestamp at the edge", _ms_at_the_edge,
     ("transactions [transactions/part-00000.parquet] column ts", "cannot be read as Datetime",
      "1 rows", "customer_id=")),
    ("ids do not match", _ids_do_not_match,
     ("transactions", "column customer_id", "100% of the rows match no customer_id")),
    ("both forms", _both_forms, ("table usage", "usage/ and usage.csv", "ambiguous")),
    ("zero bytes", lambda d: _part(d, "calls").write_bytes(b""),
     ("calls [calls/part-00000.parquet]", "unreadable or truncated file")),
    ("truncated", _truncate, ("transactions [transactions/part-00000.parquet]",
                              "unreadable or truncated")),
    ("no customer_id", _no_customer_id,
     ("customers [customers.csv] column customer_id", "missing required column")),
    ("semicolons", _as_csv("customers", separator=";"),
     ("customers [customers.csv] column customer_id", "missing required column")),
    ("link out", _link_out, ("surveys.csv is a link that leads out of the data directory",)),
    ("negative latency", _edit("network", _first_row(-5.0, "latency_ms")),
     ("network [network/part-00000.parquet] column latency_ms", "latency_ms below 0", "1 rows",
      "customer_id=")),
    ("5G share of 3.5", _edit("network", _first_row(3.5, "coverage_5g_share")),
     ("column coverage_5g_share", "coverage_5g_share outside 0-1", "1 rows")),
    ("negative minutes", _edit("calls", _first_row(-3.0, "minutes")),
     ("calls [calls/part-00000.parquet] column minutes", "minutes below 0", "caller_id=")),
    ("hive key clash", _hive_clash,
     ("table transactions: partition key 'category' of category=topup/part-00000.parquet",
      "also a column of the file")),
]  # fmt: skip


@pytest.fixture
def data(generated_operator: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(generated_operator, copy, ignore=shutil.ignore_patterns("_truth"))
    return copy


def _run(data: Path, out: Path, as_of: str | None = AS_OF) -> tuple[int, list[str]]:
    dated = ["--as-of", as_of] if as_of else []
    result = CliRunner().invoke(
        app, ["run", "--data", str(data), "--out", str(out), *dated, "--quiet", "--no-tracking"]
    )
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


@pytest.mark.parametrize(("case", "mutate", "says"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_by_name_and_nothing_written(
    data: Path, tmp_path: Path, case: str, mutate: Mutate, says: tuple[str, ...]
) -> None:
    mutate(data)
    out = tmp_path / "out"
    code, lines = _run(data, out)
    assert code == 1, lines
    errors = [line for line in lines if line.startswith("error")]
    assert errors, lines
    text = " ".join(lines)
    for part in says:
        assert part in text, (part, lines)
    assert "hunter2" not in text  # nothing of a linked file's content is echoed
    assert not out.exists()


def _flip_a_timestamp(data: Path) -> None:
    """Flip the top bits of one timestamp inside an uncompressed Parquet data page, as a bad
    disk or a corrupt export would: it decodes near the int64 limit."""
    import pyarrow.parquet as pq

    path = _part(data, "transactions")
    table = pq.read_table(path)
    pq.write_table(table, path, compression="none", use_dictionary=False, write_statistics=False)
    value = table.column("ts").cast("int64")[7].as_py()
    blob = bytearray(path.read_bytes())
    at = blob.index(value.to_bytes(8, "little", signed=True))
    blob[at + 7] ^= 0x7F
    path.write_bytes(bytes(blob))


EDGE = pl.lit(2**63 - 1).cast(pl.Datetime("us"))


@pytest.mark.parametrize(
    "mutate",
    [_edit("transactions", _first_row(None, "ts").fill_null(EDGE)), _flip_a_timestamp],
    ids=["int64 edge", "bit-flipped page"],
)
def test_a_timestamp_polars_cannot_hold_is_refused_before_as_of_is_guessed(
    data: Path, tmp_path: Path, mutate: Mutate
) -> None:
    """Without --as-of the run dates itself from the transactions: only once they are valid
    (it was a Rust panic and a traceback: `NaiveDateTime + TimeDelta overflowed`)."""
    mutate(data)
    out = tmp_path / "out"
    code, lines = _run(data, out, as_of=None)
    assert code == 1, lines
    text = " ".join(lines)
    assert "transactions [transactions/part-00000.parquet] column ts: dated after today" in text
    assert "1 rows" in text and "Panic" not in text
    assert not out.exists()


def test_a_panic_without_validation_is_one_line(data: Path, tmp_path: Path) -> None:
    """--no-validate dates the run from unvalidated transactions: Polars panics on the int64-edge
    timestamp, and that is one line naming the table, exit 1, nothing written."""
    _edit("transactions", _first_row(None, "ts").fill_null(EDGE))(data)
    out = tmp_path / "out" / "profiles.parquet"
    result = CliRunner().invoke(
        app, ["features", "--data", str(data), "--out", str(out), "--no-validate"]
    )
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: transactions in {data}: cannot be read to date the run")
    assert "PanicException" in lines[0] and "Traceback" not in result.output
    assert not out.parent.exists()


def test_self_calls_are_counted_and_left_out_of_the_call_graph(data: Path) -> None:
    """A call to oneself (one's own voicemail) is a policy: warned with its count, and the
    features leave it out, so the profile (and every score built on it) does not move."""
    import features
    from crm_engine.validation import validate

    as_of = dt.date.fromisoformat(AS_OF)
    before = features.build_profile(load_tables(data), as_of).collect()
    calls = pl.read_parquet(_part(data, "calls"))
    self_calls = calls.gather_every(500).with_columns(pl.col("caller_id").alias("callee_id"))
    pl.concat([calls, self_calls]).write_parquet(_part(data, "calls"))
    n = self_calls.height
    [warning] = [p for p in validate(data).problems if p.column == "callee_id"]
    assert (warning.severity, warning.file, warning.rows) == (
        "warning",
        "calls/part-00000.parquet",
        n,
    )
    assert warning.message.startswith("self-calls (callee_id equals caller_id)")
    after = features.build_profile(load_tables(data), as_of).collect()
    assert_frame_equal(after, before)


def test_too_little_to_model_is_said_before_any_stage(data: Path, tmp_path: Path) -> None:
    # everyone churned before as_of
    _edit("customers", pl.lit(dt.date(2024, 1, 1)).alias("churn_date"))(data)
    code, lines = _run(data, tmp_path / "out")
    assert code == 1
    assert "too little to model at as_of 2024-10-01: 0 customer(s) still customers" in " ".join(
        lines
    )
    assert not (tmp_path / "out").exists()


def test_timezones_are_converted_to_utc_and_said(data: Path, tmp_path: Path) -> None:
    naive = pl.read_parquet(_part(data, "transactions"))
    _edit(
        "transactions", pl.col("ts").dt.replace_time_zone("UTC").dt.convert_time_zone("Asia/Tokyo")
    )(data)
    loaded = (
        load_tables(data)["transactions"]
        .collect()
        .filter(pl.col("customer_id").is_in(naive["customer_id"].implode()))
    )
    assert (
        loaded.sort("customer_id", "ts")["ts"].to_list()
        == naive.sort("customer_id", "ts")["ts"].to_list()
    )
    out = tmp_path / "out"
    code, lines = _run(data, out)
    assert code == 0, lines
    import json

    warnings = json.loads((out / "manifest.json").read_text())["validation"]["warnings"]
    assert {"table": "transactions", "column": "ts", "rows": 0,
            "message": "time zone Asia/Tokyo: converted to UTC"} in warnings  # fmt: skip


def test_csv_offsets_are_instants(tmp_path: Path) -> None:
    from crm_engine.contracts import INPUT_TABLES
    from crm_engine.io import TableSource, scan_table

    path = tmp_path / "transactions.csv"
    path.write_text(
        "customer_id,ts,amount,category,channel\n"
        "1,2024-01-01 10:00:00+02:00,5.0,topup,app\n"
        "2,2024-01-01 10:00:00+00:00,5.0,topup,app\n"
    )
    frame = scan_table(
        TableSource("transactions", path, "csv"), INPUT_TABLES["transactions"]
    ).collect()
    assert frame["ts"].to_list() == [dt.datetime(2024, 1, 1, 8), dt.datetime(2024, 1, 1, 10)]


LONG_ID = 12_345_678_901_234_567  # 17 digits: beyond 2**53, where floats skip odd integers

KEYS = {"customers": ["customer_id"], "transactions": ["customer_id"], "usage": ["customer_id"],
        "network": ["customer_id"], "interactions": ["customer_id"], "surveys": ["customer_id"],
        "calls": ["caller_id", "callee_id"]}  # fmt: skip


def test_17_digit_csv_ids_are_read_exactly(data: Path) -> None:
    """Ids past 2**53 in CSV are read digit for digit: no customer takes a neighbour's rows."""
    from crm_engine.validation import validate

    for table, keys in KEYS.items():
        _edit(table, *[(pl.col(k) + LONG_ID).alias(k) for k in keys])(data)
    for table in ("customers", "transactions"):
        _as_csv(table)(data)
    expected = pl.read_parquet(data / "usage" / "*.parquet")["customer_id"].unique().sort()
    assert (expected % 2 == 1).any()  # odd ids: the ones a float rounds onto a neighbour

    report = validate(data)
    assert report.ok, [str(p) for p in report.errors]
    assert not [p for p in report.warnings if "not in customers" in p.message]
    tables = load_tables(data)
    customers = tables["customers"].collect()["customer_id"]
    assert customers.n_unique() == customers.len()
    assert expected.is_in(customers.implode()).all()
    paid = tables["transactions"].collect()
    assert paid["customer_id"].is_in(customers.implode()).all()
    assert paid["customer_id"].to_list() == [
        int(v) for v in pl.read_csv(data / "transactions.csv", infer_schema=False)["customer_id"]
    ]


def test_csv_offsets_are_converted_and_said(data: Path) -> None:
    """The warning the README promises for time-zone-aware timestamps, for CSV text too."""
    from crm_engine.validation import validate

    _as_csv("transactions")(data)
    path = data / "transactions.csv"
    frame = pl.read_csv(path, infer_schema=False)
    shifted = pl.int_range(pl.len()) % 10 == 0
    frame.with_columns(
        pl.when(shifted).then(pl.col("ts") + "+02:00").otherwise(pl.col("ts")).alias("ts")
    ).write_csv(path)
    n = (frame.height + 9) // 10
    [warning] = [p for p in validate(data).warnings if p.column == "ts"]
    assert (warning.table, warning.file, warning.rows) == ("transactions", "transactions.csv", n)
    assert warning.message == "timestamps with a UTC offset: converted to UTC"
    result = CliRunner().invoke(app, ["validate", str(data)])
    assert result.exit_code == 0, result.output
    assert f"converted to UTC: {n} rows" in " ".join(result.output.split())


def test_string_ids_with_a_call_graph(data: Path, tmp_path: Path) -> None:
    """Text customer ids everywhere, calls included: profiles are built (was an int() crash)."""
    for table, keys in (
        ("customers", ["customer_id"]),
        ("transactions", ["customer_id"]),
        ("usage", ["customer_id"]),
        ("network", ["customer_id"]),
        ("interactions", ["customer_id"]),
        ("surveys", ["customer_id"]),
        ("calls", ["caller_id", "callee_id"]),
    ):
        _edit(table, *[pl.format("c{}", pl.col(k)).alias(k) for k in keys])(data)
    out = tmp_path / "profiles.parquet"
    result = CliRunner().invoke(
        app, ["features", "--data", str(data), "--as-of", AS_OF, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    profile = pl.read_parquet(out)
    assert profile.schema["customer_id"] == pl.String
    assert profile["influence_score"].drop_nulls().len() > 0.5 * profile.height


def test_rare_category_values_never_reach_a_model(data: Path, tmp_path: Path) -> None:
    """Three customers with a one-off occupation: no model artifact names it."""
    import zipfile

    from churn.training import train_models
    from crm_engine.config import load_config
    from features import PointInTime
    from segmentation import segment_customers
    from segmentation.store import MODEL_FILE, save_segmenter

    rare = "lighthouse_keeper_of_ness"
    _edit("customers", pl.when(pl.int_range(pl.len()) < 3).then(pl.lit(rare))
          .otherwise(pl.col("occupation")).alias("occupation"))(data)  # fmt: skip
    cfg = load_config(None, {"data.dir": str(data), "loyalty.enabled": False})
    tables = load_tables(data)
    training = train_models(PointInTime.of(tables, dt.date.fromisoformat(AS_OF)), cfg)
    stored = training.churn.feature_spec_.categorical["occupation"]
    assert rare not in stored and "other" in stored
    assert rare not in training.churn.feature_spec_.to_json()

    import features

    profile = features.build_profile(tables, dt.date.fromisoformat(AS_OF)).collect()
    assert (profile["occupation"] == rare).sum() == 3  # the scores keep the real value
    result = segment_customers(
        profile, cfg.segmentation.model_copy(update={"k": 4}), features_cfg=cfg.features
    )
    stored = save_segmenter(result.model, tmp_path / MODEL_FILE)
    with zipfile.ZipFile(stored) as z:
        content = b"".join(z.read(name) for name in z.namelist())
    assert rare.encode() not in content and rare.encode("utf-32-le") not in content
    assert b"occupation" in content  # the model's columns and values are stored as text
    assert all(rare not in name for name in result.model.segment_names_)


def test_timestamps_on_the_configured_wall_clock(data: Path, tmp_path: Path) -> None:
    from crm_engine.contracts import INPUT_TABLES
    from crm_engine.io import TableSource, scan_table

    path = tmp_path / "transactions.csv"
    path.write_text(
        "customer_id,ts,amount,category,channel\n"
        "1,2024-07-01 10:00:00+02:00,5.0,topup,app\n"
        "2,2024-07-01 10:00:00,5.0,topup,app\n"
        "3,2024-01-01T10:00:00Z,5.0,topup,app\n"
    )
    frame = scan_table(
        TableSource("transactions", path, "csv"),
        INPUT_TABLES["transactions"],
        timezone="Europe/Berlin",
    ).collect()
    # an offset is an instant, shown on Berlin's clock; a naive time is already on it
    assert frame["ts"].to_list() == [
        dt.datetime(2024, 7, 1, 10), dt.datetime(2024, 7, 1, 10), dt.datetime(2024, 1, 1, 11)
    ]  # fmt: skip

    _edit("transactions", pl.col("ts").dt.replace_time_zone("UTC"))(data)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text('[data]\ntimezone = "America/New_York"\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", str(cfg), "--data", str(data), "--out", str(out), "--as-of", AS_OF,
              "--quiet", "--no-tracking", "--stages", "profile"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    import json

    warnings = json.loads((out / "manifest.json").read_text())["validation"]["warnings"]
    assert {"table": "transactions", "column": "ts", "rows": 0,
            "message": "time zone UTC: converted to America/New_York"} in warnings  # fmt: skip

    cfg.write_text('[data]\ntimezone = "Mars/Olympus"\n')
    bad = CliRunner().invoke(app, ["validate", str(data), "--config", str(cfg)])
    assert bad.exit_code == 1
    assert "data.timezone" in bad.output and "unknown time zone 'Mars/Olympus'" in bad.output
