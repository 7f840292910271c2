"""`crm-engine features` through typer's CliRunner, on real Parquet files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

import features
from crm_engine.cli import app
from crm_engine.io import load_tables
from tests.features._tiny import AS_OF, lazy, tiny_frames


def test_cli_writes_profile(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "profiles.parquet"
    result = CliRunner().invoke(
        app, ["features", "--data", str(tiny_data), "--as-of", "2024-01-01", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 3 customer profiles as of 2024-01-01" in result.output
    written = pl.read_parquet(out)
    expected = features.build_profile(lazy(tiny_frames()), AS_OF).collect()
    assert_frame_equal(written, expected)
    meta = pq.read_schema(out).metadata
    assert pq.read_metadata(out).metadata[b"as_of"] == b"2024-01-01"
    assert meta[b"contract"] == b"crm.profile/v1" and meta[b"as_of"] == b"2024-01-01"
    assert [p.name for p in out.parent.iterdir()] == ["profiles.parquet"]  # no temp file left


def test_cli_default_as_of_is_month_after_last_transaction(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    result = CliRunner().invoke(app, ["features", "--data", str(tiny_data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    # last transaction 2024-03-05 -> 2024-04-01
    assert "as of 2024-04-01" in result.output
    assert pq.read_schema(out).metadata[b"as_of"] == b"2024-04-01"


def test_cli_bad_as_of_is_one_line_error(tiny_data: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["features", "--data", str(tiny_data), "--as-of", "2024-13-01",
              "--out", str(tmp_path / "p.parquet")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "is not an ISO date" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "p.parquet").exists()


def test_missing_required_table_writes_nothing(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    out.write_bytes(b"previous good file")
    (tiny_data / "transactions.parquet").unlink()
    result = CliRunner().invoke(
        app, ["features", "--data", str(tiny_data), "--as-of", "2024-01-01", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "transactions" in result.output
    assert out.read_bytes() == b"previous good file"


def test_write_profiles_on_generated_data(tmp_path: Path) -> None:
    from crm_engine.generator import generate

    generate(tmp_path / "gen", customers=800, months=14, seed=5)
    out = tmp_path / "profiles.parquet"
    result = CliRunner().invoke(
        app, ["features", "--data", str(tmp_path / "gen"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = int(result.output.split("wrote ")[1].split(" customer")[0].replace(",", ""))
    df = pl.read_parquet(out)
    assert rows == df.height > 0
    assert df["customer_id"].is_unique().all()
    as_of = dt.date.fromisoformat(pq.read_schema(out).metadata[b"as_of"].decode())
    customers = load_tables(tmp_path / "gen")["customers"].collect()
    active = customers.filter(
        (pl.col("signup_date") < as_of)
        & (pl.col("churn_date").is_null() | (pl.col("churn_date") >= as_of))
    )
    assert sorted(df["customer_id"].to_list()) == sorted(active["customer_id"].to_list())
    assert df.schema == features.profile_schema(tables=set(features.REQUIRED_TABLES) | {
        "usage", "network", "interactions", "surveys", "calls"})  # fmt: skip
    assert df.select(pl.col("influence_score").max()).item() <= 1.0
    assert df["frequency"].null_count() == 0 and (df["frequency"] >= 0).all()
