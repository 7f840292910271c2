"""Month over month: each run checks the earlier committed runs' forecasts against what happened.

Three runs into one output directory on the generated operator (24 months from 2023-01): at
month 15 (as_of 2024-04-01), month 18 (2024-07-01) and month 21 (2024-10-01). By the last, the
90-day churn horizons of both earlier runs have passed, and 92 and 183 of their 365 CLV days.
``FIRST`` is the month-18 run (the one the last run checks first), ``EARLIEST`` the month-15 one,
which writes its scores as a directory of parts (``output.single_file`` off): the runs after it
read those as they read a file.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from crm_engine.cli import app
from crm_engine.io import file_sha256, load_tables
from crm_engine.scores import check_scores_file, read_scores_metadata, run_scores
from pipelines.backtest import (
    BacktestWarning,
    backtest_run,
    committed_runs,
    select_run,
    select_runs,
)
from pipelines.manifest import output_digest

runner = CliRunner()
EARLIEST = dt.date(2024, 4, 1)
FIRST = dt.date(2024, 7, 1)
SECOND = dt.date(2024, 10, 1)
CHURN_DAYS = 90
CLV_DAYS = 365
PART_ROWS = 1_000
"""Rows per part of the month-15 run's scores (the generated operator: 3 parts)."""


def _run(data: Path, out: Path, as_of: dt.date, *extra: str) -> None:
    result = runner.invoke(
        app,
        ["run", "--data", str(data), "--out", str(out), "--as-of", as_of.isoformat(), "--quiet",
         "--stages", "valuation,churn", *extra],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + str(result.exception)


@pytest.fixture(scope="module")
def two_runs(generated_operator: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output directory after the month-15 and month-18 runs (untracked) and the month-21
    run (tracked): a chain of three committed runs (``output.keep_runs`` = 3 keeps them all)."""
    out = tmp_path_factory.mktemp("backtest") / "out"
    parts = out.parent / "parts.toml"
    parts.write_text(f"[output]\nsingle_file = false\npart_rows = {PART_ROWS}\n")
    _run(generated_operator, out, EARLIEST, "--no-tracking", str(parts))
    _run(generated_operator, out, FIRST, "--no-tracking")
    _run(generated_operator, out, SECOND)
    return out


def _scores(run_dir: Path) -> pl.DataFrame:
    """A run's scores, whichever form it wrote them in."""
    source = run_scores(run_dir)
    assert source is not None, run_dir
    return pl.read_parquet(source.files())


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def _first_run_dir(out: Path) -> Path:
    second = _manifest(out / "current")
    return out / "runs" / second["previous_run_id"]


def _earliest_run_dir(out: Path) -> Path:
    return out / "runs" / _manifest(_first_run_dir(out))["previous_run_id"]


def _realised(
    data: Path, scores: pl.DataFrame, start: dt.date = FIRST, now: dt.date = SECOND
) -> pl.DataFrame:
    """Straight from the tables: who left in [start, min(start + 90 days, now)), what each paid
    in [start, now), and the revenue the run at ``start`` expected over those days."""
    customers = pl.read_parquet(data / "customers" / "*.parquet")
    tx = pl.read_parquet(data / "transactions" / "*.parquet")
    end = min(start + dt.timedelta(days=CHURN_DAYS), now)
    revenue = (
        tx.filter((pl.col("ts").dt.date() >= start) & (pl.col("ts").dt.date() < now))
        .group_by("customer_id")
        .agg(pl.col("amount").sum().alias("revenue"))
    )
    share = (now - start).days / CLV_DAYS
    churn = pl.col("churn_date")
    return (
        scores.join(customers.select("customer_id", "churn_date"), on="customer_id")
        .join(revenue, on="customer_id", how="left")
        .with_columns(
            (churn.is_not_null() & (churn >= start) & (churn < end)).alias("churned"),
            pl.col("revenue").fill_null(0.0),
            (pl.col("expected_purchases") * pl.col("expected_avg_value") * share).alias("expected"),
        )
    )


def test_the_second_run_checks_the_first(two_runs: Path, generated_operator: Path) -> None:
    second = _manifest(two_runs / "current")
    first_dir = _first_run_dir(two_runs)
    first = _manifest(first_dir)
    assert first["as_of"] == FIRST.isoformat()
    assert _manifest(_earliest_run_dir(two_runs))["previous_run_id"] is None
    b = second["backtest"]
    assert (b["run_id"], b["as_of"], b["checked_to"]) == (
        first["run_id"],
        FIRST.isoformat(),
        SECOND.isoformat(),
    )
    assert b["model_versions"] == first["model_versions"] and b["skipped"] == []
    truth = _realised(generated_operator, _scores(first_dir))
    assert b["not_found"] == 0
    churn = b["churn"]
    auc = roc_auc_score(truth["churned"].to_numpy(), truth["churn_probability"].to_numpy())
    assert abs(churn["roc_auc"] - auc) <= 1e-9
    assert churn["roc_auc"] > 0.6  # the model sees who leaves (measured: see the report)
    assert (churn["elapsed_days"], churn["elapsed_share"]) == (CHURN_DAYS, 1.0)
    assert churn["churned"] == truth["churned"].sum() and churn["customers"] == truth.height
    bands = {r["churn_risk_band"]: r for r in churn["by_band"]}
    for band, part in truth.group_by("churn_risk_band"):
        assert bands[band[0]]["realised_rate"] == pytest.approx(part["churned"].mean(), abs=1e-12)
    assert bands["high"]["realised_rate"] > churn["realised_rate"]  # the high band leaves more
    assert [r["decile"] for r in churn["by_decile"]] == list(range(1, 11))
    assert sum(r["customers"] for r in churn["by_decile"]) == truth.height
    value = b["value"]
    assert value["elapsed_days"] == (SECOND - FIRST).days == 92
    error = (pl.col("expected") - pl.col("revenue")).abs().mean()
    by_plan = dict(truth.group_by("plan_type").agg(error).iter_rows())
    assert {r["plan_type"] for r in value["by_plan"]} == set(by_plan) == {"prepaid", "postpaid"}
    for row in value["by_plan"]:
        assert abs(row["mae"] - by_plan[row["plan_type"]]) <= 1e-9, row
    assert abs(value["mae"] - truth.select(error).item()) <= 1e-9
    bought = truth.join(
        pl.read_parquet(generated_operator / "transactions" / "*.parquet")
        .filter(pl.col("ts").dt.date().is_between(FIRST, SECOND, closed="left"))
        .filter(pl.col("amount") > 0)
        .select("customer_id")
        .unique()
        .with_columns(pl.lit(1).alias("bought")),
        on="customer_id",
        how="left",
    )
    auc_alive = roc_auc_score(bought["bought"].fill_null(0).to_numpy(), bought["p_alive"])
    assert abs(value["p_alive_auc"] - auc_alive) <= 1e-9
    # aggregates only: the manifest's backtest holds no customer rows (a few kB per run)
    assert len(b["runs"]) == 2 and len(json.dumps(b)) < 10_000 * (1 + len(b["runs"]))
    assert {k: v for k, v in b["runs"][0].items() if k not in ("runs", "skipped")} == {
        k: v for k, v in b.items() if k not in ("runs", "skipped")
    }
    print(
        f"\nbacktest of {FIRST} at {SECOND}: churn AUC {auc:.4f}, lift "
        f"{churn['lift_top_decile']:.2f}, realised {churn['realised_rate']:.3f} vs predicted "
        f"{churn['mean_predicted']:.3f}; revenue MAE "
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(by_plan.items()))
        + f"; P(alive) AUC {auc_alive:.4f}"
    )


def test_the_third_run_checks_every_earlier_run(two_runs: Path, generated_operator: Path) -> None:
    """The month-21 run's manifest holds the month-18 and month-15 runs' backtests, latest
    first, each recomputed here from that run's scores and the tables."""
    third = _manifest(two_runs / "current")
    runs = third["backtest"]["runs"]
    expected = [(_first_run_dir(two_runs), FIRST), (_earliest_run_dir(two_runs), EARLIEST)]
    assert [(r["run_id"], r["as_of"]) for r in runs] == [
        (d.name, when.isoformat()) for d, when in expected
    ]
    assert third["metrics"]["backtest"]["backtest.runs_checked"] == 2.0
    for r, (run_dir, when) in zip(runs, expected, strict=True):
        assert r["checked_to"] == SECOND.isoformat() and r["runs"] == [] and r["skipped"] == []
        truth = _realised(generated_operator, _scores(run_dir), when)
        churn, value = r["churn"], r["value"]
        auc = roc_auc_score(truth["churned"].to_numpy(), truth["churn_probability"].to_numpy())
        assert abs(churn["roc_auc"] - auc) <= 1e-9, (when, churn["roc_auc"], auc)
        assert (churn["elapsed_days"], churn["elapsed_share"]) == (CHURN_DAYS, 1.0)
        assert churn["churned"] == truth["churned"].sum() > 0
        elapsed = (SECOND - when).days
        assert value["elapsed_days"] == elapsed and value["elapsed_share"] == elapsed / CLV_DAYS
        error = (pl.col("expected") - pl.col("revenue")).abs().mean()
        by_plan = dict(truth.group_by("plan_type").agg(error).iter_rows())
        assert {
            row["plan_type"]: pytest.approx(row["mae"], abs=1e-9) for row in value["by_plan"]
        } == by_plan
        print(
            f"\nbacktest of {when} at {SECOND}: churn AUC {auc:.4f}, lift "
            f"{churn['lift_top_decile']:.2f}, realised {churn['realised_rate']:.3f} vs predicted "
            f"{churn['mean_predicted']:.3f}; {elapsed} of {CLV_DAYS} CLV days, revenue MAE "
            + ", ".join(f"{k} {v:.2f}" for k, v in sorted(by_plan.items()))
        )
    assert runs[1]["value"]["elapsed_days"] == 183  # 2024-04-01 to 2024-10-01
    # the month-18 run itself checked the month-15 one (91 days: its churn horizon had passed)
    second = _manifest(_first_run_dir(two_runs))
    assert [r["as_of"] for r in second["backtest"]["runs"]] == [EARLIEST.isoformat()]
    print(
        f"backtest stage: {second['timings_s']['backtest']} s for one earlier run, "
        f"{third['timings_s']['backtest']} s for two; manifest backtest "
        f"{len(json.dumps(third['backtest'])):,} bytes"
    )


def test_the_backtest_reaches_mlflow_and_the_report(two_runs: Path) -> None:
    from mlflow import MlflowClient

    second = _manifest(two_runs / "current")
    client = MlflowClient(tracking_uri=second["tracking_uri"])
    parent = client.get_run(second["mlflow_run_id"])
    stage = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}' "
        "and tags.`crm.stage` = 'backtest'",
    )
    assert len(stage) == 1
    metrics = stage[0].data.metrics
    assert metrics["backtest.churn.roc_auc"] == pytest.approx(
        second["backtest"]["churn"]["roc_auc"]
    )
    assert metrics["backtest.value.prepaid.mae"] > 0
    # every earlier run: one point each, step = its age in days, timestamp = its as_of
    runs = second["backtest"]["runs"]
    history = client.get_metric_history(stage[0].info.run_id, "backtest.history.churn.roc_auc")
    points = sorted((m.step, m.timestamp, m.value) for m in history)
    assert points == [
        (
            (SECOND - dt.date.fromisoformat(r["as_of"])).days,
            int(dt.datetime.fromisoformat(r["as_of"] + "T00:00:00+00:00").timestamp() * 1000),
            pytest.approx(r["churn"]["roc_auc"]),
        )
        for r in runs
    ]
    assert [p[0] for p in points] == [92, 183]
    assert stage[0].data.params["backtest.runs"] == ",".join(
        f"{r['run_id']}@{r['as_of']}" for r in runs
    )
    shares = client.get_metric_history(stage[0].info.run_id, "backtest.history.value.elapsed_share")
    assert sorted((m.step, m.value) for m in shares) == [
        (92, pytest.approx(92 / CLV_DAYS)),
        (183, pytest.approx(183 / CLV_DAYS)),
    ]
    text = (two_runs / "report.html").read_text()
    assert "Since the last run" in text and "Did the churn scores come true?" in text
    assert f"{second['backtest']['churn']['roc_auc']:.3f}" in text
    since = text[text.index("id='since'") : text.index("id='quality'")]
    assert "Every earlier run checked (2)" in since
    assert "for each earlier run (oldest first" in since  # the chart's caption
    for r in runs:
        assert f"{r['as_of']}<br><code>{r['run_id']}</code>" in since
        assert f"{r['churn']['roc_auc']:.3f}" in since
    first_report = (_earliest_run_dir(two_runs) / "report.html").read_text()
    assert "No earlier committed run in this output directory to check yet." in first_report


def test_a_partly_passed_horizon_says_how_much(two_runs: Path, generated_operator: Path) -> None:
    """At 2024-08-01 only 31 of the first run's 90 churn days have passed: the window is cut
    there, and nothing later is read."""
    tables = load_tables(generated_operator)
    when = dt.date(2024, 8, 1)
    run, skipped = select_run(two_runs, when, pl.Int64())
    assert run is not None and run.as_of == FIRST and skipped == []
    report = backtest_run(run, tables, when)
    assert report.churn is not None and report.value is not None
    assert report.churn.elapsed_days == 31
    assert report.churn.elapsed_share == pytest.approx(31 / 90)
    assert report.value.elapsed_share == pytest.approx(31 / 365)
    customers = pl.read_parquet(generated_operator / "customers" / "*.parquet")
    scored = _scores(run.path).select("customer_id")
    left = scored.join(customers, on="customer_id").filter(
        pl.col("churn_date").is_between(FIRST, when, closed="left")
    )
    assert report.churn.churned == left.height > 0


def test_the_command_checks_every_run_and_says_how_much_passed(
    two_runs: Path, generated_operator: Path
) -> None:
    """``crm-engine backtest --as-of 2024-08-01``: the month-18 run (31 of its 90 churn days
    passed) and the month-15 one (all 90), each with its own share and AUC; the month-21 run is
    not before --as-of and is passed over quietly."""
    when = dt.date(2024, 8, 1)
    result = runner.invoke(
        app,
        ["backtest", str(two_runs), "--data", str(generated_operator),
         "--as-of", when.isoformat(), "--json", "--no-drift"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    runs = {r["as_of"]: r for r in doc["runs"]}
    assert list(runs) == [FIRST.isoformat(), EARLIEST.isoformat()] and doc["skipped"] == []
    partly, whole = runs[FIRST.isoformat()]["churn"], runs[EARLIEST.isoformat()]["churn"]
    assert (partly["elapsed_days"], partly["elapsed_share"]) == (31, 31 / CHURN_DAYS)
    assert (whole["elapsed_days"], whole["elapsed_share"]) == (CHURN_DAYS, 1.0)
    assert doc["run_id"] == doc["runs"][0]["run_id"] and doc["churn"] == partly
    for as_of, r in runs.items():
        run_dir = two_runs / "runs" / r["run_id"]
        start = dt.date.fromisoformat(as_of)
        truth = _realised(generated_operator, _scores(run_dir), start, when)
        auc = roc_auc_score(truth["churned"].to_numpy(), truth["churn_probability"].to_numpy())
        assert abs(r["churn"]["roc_auc"] - auc) <= 1e-9
        assert r["value"]["elapsed_days"] == (when - start).days
    table = runner.invoke(
        app,
        ["backtest", str(two_runs), "--data", str(generated_operator),
         "--as-of", when.isoformat(), "--no-drift"],
    )  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "Earlier runs checked" in table.output and "34%" in table.output
    # monitoring.backtest_max_runs caps the runs checked, latest first
    capped, skipped = select_runs(two_runs, when, pl.Int64(), max_runs=1)
    assert [r.as_of for r in capped] == [FIRST] and skipped == []
    assert [r.as_of for r in select_runs(two_runs, SECOND, pl.Int64(), max_runs=12)[0]] == [
        FIRST,
        EARLIEST,
    ]


def test_a_run_of_parts_is_checked_and_followed_like_a_run_of_one_file(two_runs: Path) -> None:
    """The month-15 run wrote ``scores/``: parts of at most ``part_rows`` rows, each with the
    contract's metadata, in the manifest with one sha256 over them. The month-18 run after it
    counted who moved from them; ``out/`` links the current run's form only."""
    earliest = _earliest_run_dir(two_runs)
    doc = _manifest(earliest)
    parts = sorted((earliest / "scores").glob("*.parquet"))
    assert not (earliest / "scores.parquet").exists() and (earliest / "profiles").is_dir()
    heights = [pl.scan_parquet(p).select(pl.len()).collect().item() for p in parts]
    assert len(parts) >= 2 and max(heights) == PART_ROWS
    assert sum(heights) == doc["outputs"]["scores"]["rows"] == _scores(earliest).height
    assert check_scores_file(earliest / "scores") == []
    assert {read_scores_metadata(p)["crm.run_id"] for p in parts} == {doc["run_id"]}
    recorded = doc["outputs"]["scores"]
    assert recorded["sha256"] == output_digest(earliest / "scores")["sha256"]
    assert [f["file"] for f in recorded["files"]] == [p.name for p in parts]
    drift = _manifest(_first_run_dir(two_runs))["drift"]
    assert drift["previous_run_id"] == doc["run_id"] and drift["notes"] == []
    assert drift["moved"], drift  # the moves counted from the parts
    assert (two_runs / "scores.parquet").is_file() and not (two_runs / "scores").exists()
    assert not (two_runs / "scores").is_symlink()


def _copy(out: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the three-run output directory (links kept) and its month-18 run's directory."""
    copy = tmp_path / "out"
    shutil.copytree(out, copy, symlinks=True)
    return copy, _first_run_dir(copy)


def _edit_manifest(run_dir: Path, **changes: object) -> None:
    doc = _manifest(run_dir)
    doc.update(changes)
    (run_dir / "manifest.json").write_text(json.dumps(doc))


def test_another_contract_major_is_skipped_with_one_warning(two_runs: Path, tmp_path: Path) -> None:
    out, first = _copy(two_runs, tmp_path)
    _edit_manifest(first, contract="crm.scores/v2")
    with pytest.warns(BacktestWarning) as caught:
        run, skipped = select_run(out, SECOND, pl.Int64())
    assert run is not None and run.as_of == EARLIEST  # the run before it is tried
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert f"run {first.name}" in str(caught[0].message)
    assert "crm.scores/v2" in str(caught[0].message)
    assert skipped == [{"run_id": first.name, "reason": skipped[0]["reason"]}]


def test_the_command_line_says_a_skipped_run_in_one_line(
    two_runs: Path, generated_operator: Path, tmp_path: Path
) -> None:
    """The real console script: one warning line naming each run, then the one-line error."""
    out, first = _copy(two_runs, tmp_path)
    earliest = _earliest_run_dir(out)
    _edit_manifest(first, contract="crm.scores/v2")
    _edit_manifest(earliest, contract="crm.scores/v2")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "crm-engine"), "backtest", str(out),
         "--data", str(generated_operator), "--as-of", SECOND.isoformat()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 3, lines
    for line, run_dir in zip(lines, (first, earliest), strict=False):
        assert line.startswith(f"BacktestWarning: backtest: run {run_dir.name} (")
        assert line.endswith("skipped: its scores contract is 'crm.scores/v2', this engine "
                             "reads crm.scores/v1")  # fmt: skip
    assert lines[2].startswith("error: ") and "2 skipped, see the warnings" in lines[2]


def test_a_run_whose_earlier_runs_are_skipped_says_so(
    two_runs: Path, generated_operator: Path, tmp_path: Path
) -> None:
    """The stage of a run: a skipped run is named and the one before it checked; with every
    earlier run skipped, nothing is checked, the skipped runs in its report, metrics and page."""
    from crm_engine.config import load_config
    from crm_engine.report import ReportInputs, render_report
    from pipelines.backtest import backtest_stage
    from pipelines.runner import StageContext

    out, first = _copy(two_runs, tmp_path)
    earliest = _earliest_run_dir(out)
    _edit_manifest(first, contract="crm.scores/v2")
    cfg = load_config(None, {"data.dir": str(generated_operator), "output.dir": str(out)})
    tables = load_tables(generated_operator)
    ctx = StageContext(cfg, SECOND, tmp_path, tracking=False, tables=tables, output_dir=out)
    with pytest.warns(BacktestWarning) as caught:
        result = backtest_stage(ctx, tables)
    assert len(caught) == 1 and first.name in str(caught[0].message)
    report = result.report
    assert report.run_id == earliest.name and [r.run_id for r in report.runs] == [earliest.name]
    assert [s["run_id"] for s in report.skipped] == [first.name]
    assert result.metrics["backtest.skipped_runs"] == 1.0
    assert result.metrics["backtest.runs_checked"] == 1.0
    _edit_manifest(earliest, contract="crm.scores/v2")
    with pytest.warns(BacktestWarning) as caught:
        result = backtest_stage(ctx, tables)
    assert len(caught) == 2
    report = result.report
    assert report.run_id is None and report.churn is None and report.value is None
    assert report.runs == []
    assert [s["run_id"] for s in report.skipped] == [first.name, earliest.name]
    assert result.metrics == {"backtest.skipped_runs": 2.0}
    assert report.to_dict()["skipped"][0]["reason"].startswith("its scores contract is")
    scores = pl.read_parquet(out / "scores.parquet")
    page = render_report(ReportInputs(scores=scores, as_of=SECOND, run_id="r", backtest=report))
    since = page[page.index("id='since'") : page.index("id='quality'")]
    assert "Earlier runs passed over" in since and first.name in since
    assert "No earlier committed run could be checked." in since
    # without a run output directory (a stage command's files) there is nothing to check
    assert backtest_stage(StageContext(cfg, SECOND, tmp_path, False, tables), tables).report is None


def test_another_customer_id_type_is_skipped_with_one_warning(
    two_runs: Path, tmp_path: Path
) -> None:
    out, first = _copy(two_runs, tmp_path)
    scores = first / "scores.parquet"
    pl.read_parquet(scores).with_columns(pl.col("customer_id").cast(pl.String)).write_parquet(
        scores
    )
    outputs = _manifest(first)["outputs"]
    outputs["scores.parquet"]["sha256"] = file_sha256(scores)  # a consistent run of String ids
    _edit_manifest(first, outputs=outputs)
    with pytest.warns(BacktestWarning) as caught:
        run, skipped = select_run(out, SECOND, pl.Int64())
    assert run is not None and run.as_of == EARLIEST and len(caught) == 1
    assert "customer ids are String, the data's are Int64" in str(caught[0].message)
    assert skipped[0]["run_id"] == first.name


def test_a_run_without_the_compared_columns_is_skipped(two_runs: Path, tmp_path: Path) -> None:
    """A consistent run whose scores lack a column compared is passed over, not a failed run."""
    out, first = _copy(two_runs, tmp_path)
    scores = first / "scores.parquet"
    pl.read_parquet(scores).drop("expected_avg_value").write_parquet(scores)
    outputs = _manifest(first)["outputs"]
    outputs["scores.parquet"]["sha256"] = file_sha256(scores)
    _edit_manifest(first, outputs=outputs)
    with pytest.warns(BacktestWarning, match="scores.parquet has no expected_avg_value"):
        run, _ = select_run(out, SECOND, pl.Int64())
    assert run is not None and run.as_of == EARLIEST


def test_a_manifest_without_horizons_or_date_is_not_a_failed_run(
    two_runs: Path, tmp_path: Path
) -> None:
    out, first = _copy(two_runs, tmp_path)
    config = _manifest(first)["config"]
    del config["churn"]
    _edit_manifest(first, config=config)
    with pytest.warns(BacktestWarning, match="its manifest has no churn.horizon_days"):
        assert select_run(out, SECOND, pl.Int64())[0].as_of == EARLIEST  # type: ignore[union-attr]
    _edit_manifest(first, as_of="July")
    with pytest.warns(BacktestWarning, match="cannot be read; earlier runs not checked"):
        assert select_run(out, SECOND, pl.Int64()) == (None, [])


def test_a_run_whose_files_changed_is_skipped_and_named(two_runs: Path, tmp_path: Path) -> None:
    out, first = _copy(two_runs, tmp_path)
    scores = first / "scores.parquet"
    pl.read_parquet(scores).with_columns(pl.col("churn_probability") * 0.5).write_parquet(scores)
    with pytest.warns(BacktestWarning) as caught:
        run, skipped = select_run(out, SECOND, pl.Int64())
    assert run is not None and run.as_of == EARLIEST and len(caught) == 1
    message = str(caught[0].message)
    assert first.name in message
    assert "scores.parquet does not match the sha256 its run recorded" in message
    assert skipped[0] == {
        "run_id": first.name,
        "reason": "scores.parquet does not match the sha256 its run recorded",
    }


def test_a_run_that_was_never_committed_is_never_read(two_runs: Path, tmp_path: Path) -> None:
    """What a run killed after its rename leaves (a complete ``runs/<id>`` that never became
    current), and a staging directory, are not read: the backtest still checks the first run."""
    out, first = _copy(two_runs, tmp_path)
    second = _manifest(out / "current")
    for name in ("20240901T000000Z-killed00", "99991231T000000Z-killed01"):
        killed = out / "runs" / name
        shutil.copytree(first, killed)  # valid files, a later as_of: it would win if read
        _edit_manifest(killed, run_id=name, as_of="2024-09-01", previous_run_id=second["run_id"])
    staging = out / "runs" / ".99991231T000001Z-dead0000.tmp"
    staging.mkdir()
    (staging / "manifest.json").write_text("{not json")
    earliest = _earliest_run_dir(out).name
    assert [r.run_id for r in committed_runs(out)] == [second["run_id"], first.name, earliest]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", BacktestWarning)
        run, skipped = select_run(out, SECOND, pl.Int64())
    assert run is not None and run.run_id == first.name and skipped == []


def test_backtest_command(two_runs: Path, generated_operator: Path) -> None:
    """The command checks a committed run against later data without running the pipeline,
    and finds what the second run found."""
    result = runner.invoke(
        app,
        ["backtest", str(two_runs), "--data", str(generated_operator),
         "--as-of", SECOND.isoformat(), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    recorded = _manifest(two_runs / "current")["backtest"]
    assert doc["run_id"] == recorded["run_id"]
    assert doc["churn"]["roc_auc"] == recorded["churn"]["roc_auc"]
    assert doc["value"]["by_plan"] == recorded["value"]["by_plan"]
    table = runner.invoke(
        app,
        ["backtest", str(two_runs), "--data", str(generated_operator),
         "--as-of", SECOND.isoformat()],
    )  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "churn ROC-AUC" in table.output
    assert f"{recorded['churn']['roc_auc']:.3f}" in table.output
    wrong = runner.invoke(
        app,
        ["backtest", str(two_runs), "--data", str(generated_operator), "--run", "nope"],
    )
    assert wrong.exit_code == 1
    assert "run nope is not a committed run of" in wrong.output
    assert "Traceback" not in wrong.output


def test_the_stage_checks_at_most_backtest_max_runs(
    two_runs: Path, generated_operator: Path, tmp_path: Path
) -> None:
    """``[monitoring] backtest_max_runs`` bounds the runs a run checks (latest first); it is at
    least 1."""
    from crm_engine.config import load_config
    from pipelines.backtest import backtest_stage
    from pipelines.runner import StageContext

    base = {"data.dir": str(generated_operator), "output.dir": str(two_runs)}
    tables = load_tables(generated_operator)
    cfg = load_config(None, {**base, "monitoring.backtest_max_runs": 1})
    ctx = StageContext(cfg, SECOND, tmp_path, tracking=False, tables=tables, output_dir=two_runs)
    report = backtest_stage(ctx, tables).report
    assert [r.as_of for r in report.runs] == [FIRST] and report.as_of == FIRST
    recorded = _manifest(two_runs / "current")["backtest"]
    assert report.to_dict()["runs"] == recorded["runs"][:1]
    with pytest.raises(ValueError, match="backtest_max_runs"):
        load_config(None, {**base, "monitoring.backtest_max_runs": 0})
