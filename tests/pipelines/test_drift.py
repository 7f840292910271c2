"""Month over month: each run measures what moved under the models since the last one (drift).

Three monthly runs on the generated operator (months 18, 19 and 20) find nothing; a copy of the
output directory after month 18, run again at month 21 on an export where one region's latency
tripled over the last three months and one occupation was renamed, names the latency features,
the region and the renamed values.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from crm_engine.cli import app
from crm_engine.config import MonitoringConfig
from pipelines.drift import (
    bin_counts,
    chance_psi,
    compare,
    decile_edges,
    fingerprint,
    moved_share,
    psi,
)

runner = CliRunner()
MONTHS = [dt.date(2024, 7, 1), dt.date(2024, 8, 1), dt.date(2024, 9, 1)]
PLANTED_AT = dt.date(2024, 10, 1)
REGION = "North"
RENAMED = ("farmer", "agricultural_worker")


# --- pure functions ------------------------------------------------------------------------


def test_psi_is_the_hand_computation() -> None:
    # shares 0.5/0.3/0.2 against 0.4/0.4/0.2: (0.1 ln 1.25) + (-0.1 ln 0.75) + 0
    expected = 0.1 * math.log(0.5 / 0.4) + (0.3 - 0.4) * math.log(0.3 / 0.4)
    assert psi([40, 40, 20], [50, 30, 20]) == pytest.approx(expected, abs=1e-12)
    assert psi([40, 40, 20], [40, 40, 20]) == 0.0
    # an empty bin counts as a share of 1e-4, so the index stays finite
    empty = (0.5 - 1e-4) * math.log(0.5 / 1e-4) + (0.5 - 1.0) * math.log(0.5 / 1.0)
    assert psi([100, 0], [50, 50]) == pytest.approx(empty, abs=1e-12)
    assert math.isnan(psi([0, 0], [1, 2]))
    with pytest.raises(ValueError, match="expected has 2 bins, actual 3"):
        psi([1, 2], [1, 2, 3])


def test_bins_are_deciles_right_closed_with_nulls_apart() -> None:
    values = pl.Series([float(v) for v in range(0, 101)] + [None, float("nan")])
    edges = decile_edges(values)
    assert edges == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
    counts, nulls = bin_counts(values, edges)
    assert counts == [11] + [10] * 9 and nulls == 2
    # three significant figures: a mass point that moves by less stays in its bin
    jitter = pl.Series([0.98868855] * 60 + [0.5] * 40)
    assert bin_counts(pl.Series([0.98889] * 100), decile_edges(jitter)) == ([0, 100, 0], 0)
    # a mass point collapses the edges: 0 <= 0 stays in the first bin
    zeros = pl.Series([0] * 80 + list(range(1, 21)))
    assert decile_edges(zeros) == [0.0, 10.0]
    assert bin_counts(zeros, [0.0, 10.0]) == ([80, 10, 10], 0)


def test_chance_psi_is_seldom_reached_by_two_samples_of_one_distribution() -> None:
    rng = np.random.default_rng(1)
    n = 120
    floor = chance_psi(10, n, n)
    assert floor == pytest.approx((9 + 3 * math.sqrt(18)) * 2 / n)
    draws = []
    for _ in range(400):
        a, b = pl.Series(rng.gamma(4, 10, n)), pl.Series(rng.gamma(4, 10, n))
        edges = decile_edges(a)
        draws.append(psi(bin_counts(a, edges)[0], bin_counts(b, edges)[0]))
    assert np.mean(np.array(draws) > floor) < 0.05
    assert np.mean(np.array(draws) > MonitoringConfig().psi_alert + floor) < 0.02


def _frames(rng: np.random.Generator, n: int, shift_region: str | None) -> tuple[pl.DataFrame, ...]:
    regions = np.array(["A", "B", "C", "D"])[rng.integers(0, 4, n)]
    latency = rng.gamma(4.0, 10.0, n)
    if shift_region is not None:
        latency = np.where(regions == shift_region, latency * 3, latency)
    occupation = np.array(["employee", "student", "farmer"])[rng.integers(0, 3, n)]
    profile = pl.DataFrame(
        {
            "customer_id": np.arange(n),
            "region": regions,
            "occupation": occupation,
            "latency_ms_mean_3m": latency,
            "tenure_days": rng.integers(0, 2000, n),
        }
    )
    scores = pl.DataFrame(
        {
            "customer_id": np.arange(n),
            "churn_probability": rng.beta(1, 15, n),
            "churn_risk_band": np.array(["low", "medium", "high"])[rng.integers(0, 3, n)],
        }
    )
    return profile, scores


def test_one_region_and_a_renamed_value_are_named() -> None:
    rng = np.random.default_rng(0)
    cfg = MonitoringConfig()
    before = fingerprint(*_frames(rng, 4000, None), {"customers": 4000})
    assert set(before["by_region"]) == {"A", "B", "C", "D"}
    assert "latency_ms_mean_3m" in before["numeric"] and "churn_probability" in before["numeric"]
    assert before["categorical"]["occupation"]["source"] == "profile"
    profile, scores = _frames(rng, 4000, "C")
    profile = profile.with_columns(pl.col("occupation").replace("farmer", "agri"))
    _, drift = compare(before, profile, scores, {"customers": 4100}, cfg)
    by_region = drift["psi_by_region"]["latency_ms_mean_3m"]
    assert by_region["C"] > cfg.psi_alert > max(v for r, v in by_region.items() if r != "C")
    lines = {a.column: a for a in drift["alerts"]}
    assert lines["latency_ms_mean_3m"].regions == ["C"]
    assert "region C alone" in lines["latency_ms_mean_3m"].message
    assert 1200 < drift["categories"]["occupation"]["new"]["agri"] < 1500
    assert set(drift["categories"]["occupation"]["vanished"]) == {"farmer"}
    assert "new values 'agri'" in lines["occupation"].message
    assert "tenure_days" not in lines and "churn_probability" not in lines
    assert drift["rows"] == {"customers": {"previous": 4000, "current": 4100}}
    # the same frames again: nothing moved
    profile, scores = _frames(np.random.default_rng(1), 4000, None)
    _, calm = compare(before, profile, scores, {"customers": 4000}, cfg)
    assert calm["alerts"] == [] and max(calm["psi"].values()) < cfg.psi_warn


def test_a_profile_read_a_column_at_a_time_drifts_as_the_frame_does(tmp_path: Path) -> None:
    """The run's profile waits in a file and drift reads it a column at a time: the same
    fingerprint and the same drift as the frame in memory."""
    rng = np.random.default_rng(2)
    cfg = MonitoringConfig()
    profile, scores = _frames(rng, 3000, None)
    before = fingerprint(profile, scores, {"customers": 3000})
    path = tmp_path / "profile.parquet"
    profile.write_parquet(path)
    assert fingerprint(pl.scan_parquet(path), scores, {"customers": 3000}) == before
    moved, scores = _frames(rng, 3000, "B")
    moved.write_parquet(path)
    in_memory = compare(before, moved, scores, {"customers": 3000}, cfg)
    assert compare(before, pl.scan_parquet(path), scores, {"customers": 3000}, cfg) == in_memory
    assert in_memory[1]["psi_by_region"]["latency_ms_mean_3m"]["B"] > cfg.psi_alert


def test_moved_share_counts_customers_in_both_runs() -> None:
    before = pl.DataFrame(
        {"customer_id": [1, 2, 3, 4], "value_tier": ["gold", "gold", "bronze", None]}
    )
    after = pl.DataFrame(
        {"customer_id": [2, 3, 4, 5], "value_tier": ["silver", "bronze", "gold", "gold"]}
    )
    assert moved_share(before, after) == {"value_tier": {"customers": 2, "moved": 1, "share": 0.5}}


# --- the pipeline, month over month ---------------------------------------------------------


def _run(data: Path, out: Path, as_of: dt.date, *extra: str, quiet: bool = True) -> dict:
    """One ``crm-engine run``: its ``--quiet`` JSON, or (``quiet=False``) the lines after the
    run summary table under ``drift_alerts``."""
    result = runner.invoke(
        app,
        ["run", "--data", str(data), "--out", str(out), "--as-of", as_of.isoformat(),
         "--stages", "valuation,churn", *(["--quiet"] if quiet else []), *extra],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + str(result.exception)
    if not quiet:
        lines = result.stdout.splitlines()
        return {"drift_alerts": [line for line in lines if line.startswith("drift ")]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def _plant(data: Path, copy: Path) -> None:
    """A copy of the operator whose ``REGION`` latency tripled over the three months before
    ``PLANTED_AT`` and whose occupation ``farmer`` is exported as ``agricultural_worker``."""
    shutil.copytree(data, copy)
    customers = pl.read_parquet(copy / "customers" / "*.parquet")
    north = customers.filter(pl.col("region") == REGION)["customer_id"]
    start = dt.date(2024, 7, 1)
    for part in sorted((copy / "network").glob("*.parquet")):
        frame = pl.read_parquet(part)
        hit = pl.col("customer_id").is_in(north.implode()) & pl.col("month").is_between(
            start, PLANTED_AT, closed="left"
        )
        frame.with_columns(
            pl.when(hit).then(pl.col("latency_ms") * 3).otherwise(pl.col("latency_ms"))
        ).write_parquet(part)
    for part in sorted((copy / "customers").glob("*.parquet")):
        frame = pl.read_parquet(part)
        frame.with_columns(pl.col("occupation").replace(*RENAMED)).write_parquet(part)


@pytest.fixture(scope="module")
def runs(generated_operator: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Months 18-20 into one directory (the last one tracked), and month 21 on the planted
    export into a copy of that directory taken after month 18."""
    root = tmp_path_factory.mktemp("drift")
    out, planted_out = root / "out", root / "planted_out"
    _run(generated_operator, out, MONTHS[0], "--no-tracking")
    shutil.copytree(out, planted_out, symlinks=True)
    quiet = [
        _run(generated_operator, out, MONTHS[1], "--no-tracking"),
        _run(generated_operator, out, MONTHS[2]),
    ]
    planted = root / "planted"
    _plant(generated_operator, planted)
    alarmed = _run(planted, planted_out, PLANTED_AT, "--no-tracking", quiet=False)
    return {
        "out": out,
        "quiet": quiet,
        "planted": planted,
        "planted_out": planted_out,
        "alarmed": alarmed,
    }


def test_unchanged_months_raise_nothing(runs: dict) -> None:
    out: Path = runs["out"]
    drift = _manifest(out / "current")["drift"]
    first = _manifest(out / "runs" / _manifest(out / "current")["previous_run_id"])
    assert (
        first["drift"]["previous_run_id"]
        == _manifest(out / "runs" / first["previous_run_id"])["run_id"]
    )
    # The data did not move: no feature and no score is alerted on or warned about, the loyalty
    # score included (before the loyalty model grew all its trees on six snapshots' survey
    # answers, month 19 put no one at or below month 18's lowest decile: PSI 0.77, an alert).
    lines = [line for run in runs["quiet"] for line in run["drift_alerts"]]
    assert lines == []
    assert drift["previous_as_of"] == MONTHS[1].isoformat()
    assert drift["not_alerted"] == ["frequency", "recency", "T"]
    watched = {c: v for c, v in drift["psi"].items() if c not in drift["not_alerted"]}
    assert "loyalty_score" in watched and "loyalty_class" in watched
    assert max(watched.values()) < drift["psi_warn"], watched
    first_psi = first["drift"]["psi"]
    assert max(v for c, v in first_psi.items() if c not in drift["not_alerted"]) < drift["psi_warn"]
    assert not any(a["regions"] for a in drift["alerts"])
    assert {"latency_ms_mean_3m", "churn_probability", "clv", "occupation"} <= set(drift["psi"])
    moved = drift["moved"]
    assert set(moved) == {"churn_risk_band", "value_tier"}
    assert 0 < moved["value_tier"]["share"] < 0.5 and moved["churn_risk_band"]["customers"] > 1000
    assert all(r["previous"] == r["current"] for r in drift["rows"].values())
    print(
        f"\nunchanged month 20 vs 19: largest PSI {max(watched.items(), key=lambda kv: kv[1])}"
        f"; loyalty_score PSI month 19 vs 18 {first_psi['loyalty_score']:.3f}, 20 vs 19 "
        f"{watched['loyalty_score']:.3f}"
        f"; alerts of months 19 and 20: {lines}; manifest drift {len(json.dumps(drift)):,} "
        f"characters, {len(drift['psi'])} columns compared"
        f"; moved band {moved['churn_risk_band']['share']:.3f}, tier "
        f"{moved['value_tier']['share']:.3f}"
    )


def test_planted_drift_names_the_features_the_region_and_the_values(runs: dict) -> None:
    out: Path = runs["planted_out"]
    drift = _manifest(out / "current")["drift"]
    lines = runs["alarmed"]["drift_alerts"]  # printed after the run summary, one line each
    assert len(lines) == len(drift["alerts"])
    latency = [a for a in drift["alerts"] if a["column"].startswith("latency_ms")]
    assert {a["column"] for a in latency} >= {"latency_ms_mean_3m", "latency_ms_worst_3m"}
    assert all(a["regions"] == [REGION] for a in latency), latency
    assert all(a["level"] == "alert" for a in latency)
    assert any(
        line.startswith("drift alert: latency_ms_mean_3m") and REGION in line for line in lines
    )
    occupation = drift["categories"]["occupation"]
    assert set(occupation["new"]) == {RENAMED[1]} and set(occupation["vanished"]) == {RENAMED[0]}
    assert any(line.startswith("drift alert: occupation: new values 'agricultural_worker'")
               for line in lines)  # fmt: skip
    region_psi = drift["psi_by_region"]["latency_ms_mean_3m"]
    print(
        f"\nplanted month 21 vs 18: latency_ms_mean_3m PSI {drift['psi']['latency_ms_mean_3m']:.3f}"
        f", in {REGION} {region_psi[REGION]:.3f}, other regions at most "
        f"{max(v for r, v in region_psi.items() if r != REGION):.3f}; occupation PSI "
        f"{drift['psi']['occupation']:.3f}\n" + "\n".join(lines)
    )


def test_backtest_command_reports_the_input_drift_the_run_found(runs: dict) -> None:
    """``crm-engine backtest`` of month 18's run on the planted month-21 data: the profile
    features' PSIs, new and vanished values and rows are those the month-21 run's drift stage
    found against month 18 (one implementation), without the score columns; the alerts are one
    line each after the table."""
    out: Path = runs["planted_out"]
    run_drift = _manifest(out / "current")["drift"]
    month_18 = run_drift["previous_run_id"]
    args = ["backtest", str(out), "--data", str(runs["planted"]), "--as-of",
            PLANTED_AT.isoformat(), "--run", month_18]  # fmt: skip
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output + str(result.exception)
    drift = json.loads(result.stdout)["drift"]
    assert drift["previous_run_id"] == month_18 and drift["notes"][0].startswith("input side")
    scores_only = {"churn_probability", "clv", "loyalty_score", "value_tier", "churn_risk_band"}
    assert scores_only <= set(run_drift["psi"]) and not scores_only & set(drift["psi"])
    profile_psi = {c: v for c, v in run_drift["psi"].items() if c in drift["psi"]}
    assert len(profile_psi) > 50 and drift["psi"] == profile_psi
    assert drift["psi_by_region"] == run_drift["psi_by_region"]
    # every valuation column is a score column too: month 18's revenue holdout (a year after
    # the data starts) had no history for the hazard model's cuts, so auto kept the sBG there
    # and may keep the hazard now (value_model, p_alive, expected_purchases move); the run's
    # drift says so, the input side does not
    from crm_engine.contracts import owned_columns

    score_side = scores_only | set(owned_columns(("valuation",))) - {"customer_id"}
    input_categories = {k: v for k, v in run_drift["categories"].items() if k not in score_side}
    assert drift["categories"] == input_categories and drift["rows"] == run_drift["rows"]
    assert drift["moved"] == {}
    expected = [a for a in run_drift["alerts"] if a["column"] not in score_side]
    assert drift["alerts"] == expected
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + str(result.exception)
    lines = [line for line in result.stdout.splitlines() if line.startswith("drift ")]
    assert len(lines) == len(expected)
    assert any(
        line.startswith("drift alert: latency_ms_mean_3m") and f"region {REGION} alone" in line
        for line in lines
    ), lines
    assert f"drift alert: occupation: new values '{RENAMED[1]}'" in result.stdout
    quiet = runner.invoke(app, [*args, "--json", "--no-drift"])
    assert quiet.exit_code == 0 and json.loads(quiet.stdout)["drift"] is None


def test_drift_reaches_mlflow_and_the_report_as_aggregates(runs: dict) -> None:
    from mlflow import MlflowClient

    out: Path = runs["out"]
    manifest = _manifest(out / "current")
    client = MlflowClient(tracking_uri=manifest["tracking_uri"])
    parent = client.get_run(manifest["mlflow_run_id"])
    stage = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}' "
        "and tags.`crm.stage` = 'drift'",
    )
    assert len(stage) == 1
    metrics = stage[0].data.metrics
    drift = manifest["drift"]
    assert metrics["drift.psi.latency_ms_mean_3m"] == pytest.approx(
        drift["psi"]["latency_ms_mean_3m"]
    )
    assert metrics["drift.moved.value_tier"] == pytest.approx(drift["moved"]["value_tier"]["share"])
    assert metrics["drift.alerts"] == sum(a["level"] == "alert" for a in drift["alerts"])
    # aggregates only: no customer id, no list as long as the customers
    text = json.dumps(drift)
    assert len(text) < 200_000
    ids = pl.read_parquet(out / "scores.parquet")["customer_id"].head(50).to_list()

    def longest(node: object) -> int:
        if isinstance(node, dict):
            return max([len(node), *[longest(v) for v in node.values()]])
        if isinstance(node, list):
            return max([len(node), *[longest(v) for v in node]])
        return 0

    assert longest(drift) < 500  # per column, per region, per bin: never per customer (2,500)
    assert all(f'"customer_id": {i}' not in text for i in ids)
    page = (out / "report.html").read_text()
    since = page[page.index("id='since'") : page.index("id='quality'")]
    assert "What moved since the run of" in since and "What moved since the last run (PSI)" in since
    assert "grow with every month a customer stays" in since
    planted = (runs["planted_out"] / "report.html").read_text()
    assert "agricultural_worker" in planted and f"region {REGION} alone" in planted


def test_a_previous_run_without_fingerprint_or_with_changed_scores_is_said(
    runs: dict, generated_operator: Path, tmp_path: Path
) -> None:
    """A run of an engine before drift records no fingerprint: this run records its own and says
    so; a previous scores.parquet that changed since its run: no moves counted, the rest is."""
    from crm_engine.config import load_config
    from crm_engine.io import load_tables
    from pipelines.drift import drift_stage
    from pipelines.runner import StageContext

    out = tmp_path / "out"
    shutil.copytree(runs["out"], out, symlinks=True)
    current = out / "current"
    doc = _manifest(current)
    cfg = load_config(None, {"data.dir": str(generated_operator), "output.dir": str(out)})
    tables = load_tables(generated_operator)
    ctx = StageContext(cfg, PLANTED_AT, tmp_path, tracking=False, tables=tables, output_dir=out)
    profile = pl.read_parquet(current / "profiles.parquet")
    scores = pl.read_parquet(current / "scores.parquet")
    (current / "manifest.json").write_text(json.dumps({**doc, "drift": None}))
    result = drift_stage(ctx, tables, profile, scores)
    assert result.report.previous_run_id == doc["run_id"] and not result.report.compared
    assert result.report.notes == [
        f"run {doc['run_id']} recorded no distributions: nothing to compare"
    ]
    assert result.metrics == {} and "latency_ms_mean_3m" in result.report.fingerprint["numeric"]
    (current / "manifest.json").write_text(json.dumps(doc))
    scores.with_columns(pl.lit("gold").alias("value_tier")).write_parquet(
        current / "scores.parquet"
    )
    result = drift_stage(ctx, tables, profile, scores)
    assert result.report.compared and result.report.moved == {}
    assert result.report.notes == [
        f"run {doc['run_id']}'s scores are missing or changed: moves not counted"
    ]
    assert max(result.report.psi[c] for c in ("clv", "churn_probability")) == 0.0  # same frames
