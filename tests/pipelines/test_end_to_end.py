"""The whole pipeline through the CLI: contract, manifest, determinism, point in time, atomicity."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner, Result

from crm_engine.cli import app
from crm_engine.config import load_config
from crm_engine.contracts import INPUT_TABLES
from crm_engine.io import file_sha256
from crm_engine.scores import check_scores_file, read_scores_metadata
from pipelines.outputs import run_files
from pipelines.runner import Stage, StageError, StageOutput, run_pipeline
from pipelines.stages import pipeline
from tests.report_browser import check_page, require_browser

runner = CliRunner()
AS_OF = "2024-10-01"
SAME_SEGMENT_SHARE = 0.8
"""Share of customers who keep their segment id a month later with another clustering seed
(measured 0.94 on the 2,500-customer operator)."""


def _files_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()
    }


def run_cli(data: Path, out: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(
        app, ["run", "--data", str(data), "--out", str(out), "--as-of", AS_OF, "--quiet", *extra]
    )
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


ONE_THREAD = "[engine]\nthreads = 1\n"
"""The runs compared bit for bit fit on one thread: LightGBM's and BLAS's sums over threads
are not bit-reproducible (a 3-bucket run once stopped its churn fit at 200 trees, the 1-bucket
run at 114)."""


@pytest.fixture(scope="module")
def first_run(generated_operator: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run1") / "out"
    config = out.parent / "one_thread.toml"
    config.write_text(ONE_THREAD)
    code, output = run_cli(generated_operator, out, str(config))
    assert code == 0, output
    return out


def test_outputs_present_and_valid(first_run: Path, generated_operator: Path) -> None:
    for name in run_files():
        assert (first_run / name).is_file(), name
    assert check_scores_file(first_run / "scores.parquet") == []
    scores = pl.read_parquet(first_run / "scores.parquet")
    meta = read_scores_metadata(first_run / "scores.parquet")
    assert meta["crm.contract"] == "crm.scores/v1"
    assert meta["crm.contract_version"] == "1.3"
    assert meta["crm.as_of"] == AS_OF
    # every row says which model valued it: on the generated operator, whose postpaid
    # customers pay a bill every month, postpaid_model = "auto" keeps a contract model
    assert scores["value_model"].null_count() == 0
    customers = pl.read_parquet(generated_operator / "customers" / "*.parquet")
    models = scores.join(customers.select("customer_id", "plan_type"), on="customer_id")
    by_plan = dict(
        models.group_by("plan_type", pl.col("recency_days").is_not_null().alias("billed"))
        .agg(pl.col("value_model").unique())
        .select(pl.concat_str("plan_type", "billed", separator="/"), "value_model")
        .iter_rows()
    )
    purchase_models = {"bgnbd", "mbgnbd", "pareto"}
    assert set(by_plan["prepaid/true"]) | set(by_plan.get("prepaid/false", [])) <= purchase_models
    assert set(by_plan["postpaid/true"]) in ({"sbg"}, {"hazard"})  # a contract model
    # one who paid no bill yet has none to carry forward: the purchase model values them
    assert set(by_plan.get("postpaid/false", [])) <= purchase_models
    as_of = dt.date.fromisoformat(AS_OF)
    active = customers.filter(
        (pl.col("signup_date") < as_of)
        & (pl.col("churn_date").is_null() | (pl.col("churn_date") >= as_of))
    )
    assert scores.height == active.height
    assert set(scores["customer_id"]) == set(active["customer_id"])
    for col in (
        "segment_id",
        "segment_name",
        "clv",
        "p_alive",
        "churn_probability",
        "loyalty_class",
        "value_tier",
        "lifecycle_stage",
        "spend_level",
    ):
        assert scores[col].null_count() == 0, col
    assert scores["churn_probability"].is_between(0, 1).all()
    assert (scores["clv"] >= 0).all()
    n_reasons = scores["churn_reasons"].list.len()
    assert n_reasons.to_list() == scores["churn_drivers"].list.len().to_list()
    assert (n_reasons > 0).any()


def test_manifest_consistent_with_files(first_run: Path, generated_operator: Path) -> None:
    manifest = json.loads((first_run / "manifest.json").read_text())
    assert manifest["contract"] == "crm.scores/v1"
    assert manifest["contract_version"] == "1.3"
    assert manifest["as_of"] == AS_OF
    for name in (
        "scores.parquet",
        "profiles.parquet",
        "segment_profiles.parquet",
        "report.html",
        "save_first.csv",
    ):
        entry = manifest["outputs"][name]
        assert entry["sha256"] == file_sha256(first_run / name), name
    assert (
        manifest["outputs"]["scores.parquet"]["rows"]
        == pl.read_parquet(first_run / "scores.parquet").height
    )
    assert set(manifest["inputs"]) == set(INPUT_TABLES)
    tx = manifest["inputs"]["transactions"]
    assert (
        tx["rows"]
        == pl.scan_parquet(generated_operator / "transactions" / "*.parquet")
        .select(pl.len())
        .collect()
        .item()
    )
    assert {"profile", "segmentation", "valuation", "churn"} <= set(manifest["timings_s"])
    assert manifest["metrics"]["churn"]["churn.roc_auc"] > 0.6
    assert manifest["valuation"]["model"]


@pytest.mark.parametrize("buckets", [3, 7])
def test_second_run_same_scores(
    first_run: Path, generated_operator: Path, tmp_path: Path, buckets: int
) -> None:
    """The same data again, split in 3 or 7 buckets (the first run is one): the same scores,
    model columns included (the profiles, hence every fit, are identical)."""
    config = tmp_path / "buckets.toml"
    config.write_text(f"{ONE_THREAD}buckets = {buckets}\n")
    out = tmp_path / "out"
    args = ["run", str(config), "--data", str(generated_operator), "--out", str(out)]
    result = runner.invoke(app, [*args, "--as-of", AS_OF, "--no-tracking"])
    assert result.exit_code == 0, result.output
    assert "split" in result.output  # a phase of its own in the stage display
    assert_frame_equal(
        pl.read_parquet(first_run / "scores.parquet"), pl.read_parquet(out / "scores.parquet")
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["buckets"] == buckets and manifest["timings_s"]["split"] > 0
    assert json.loads((first_run / "manifest.json").read_text())["buckets"] == 1
    assert not list(out.rglob("_bucket=*"))  # the scratch is gone with the commit


def _add_rows_after_as_of(data: Path) -> None:
    """One row dated on or after as_of in every table, for an existing customer."""
    as_of = dt.date.fromisoformat(AS_OF)
    for name, contract in INPUT_TABLES.items():
        part = data / name / "part-00000.parquet"
        df = pl.read_parquet(part)
        row = df.head(1)
        tc = contract.time_column
        assert tc is not None
        later = (
            dt.datetime(as_of.year, as_of.month, as_of.day, 12)
            if df.schema[tc] != pl.Date
            else as_of
        )
        row = row.with_columns(pl.lit(later).cast(df.schema[tc]).alias(tc))
        if name == "customers":
            row = row.with_columns(pl.col("customer_id") + 10_000_000)
        if name == "interactions":
            row = row.with_columns(pl.col("opened_at").alias("closed_at"))
        pl.concat([df, row]).write_parquet(part)


def test_rows_after_as_of_change_nothing(
    first_run: Path, generated_operator: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(generated_operator, data)
    _add_rows_after_as_of(data)
    out = tmp_path / "out"
    code, output = run_cli(data, out, "--no-tracking")
    assert code == 0, output
    assert_frame_equal(
        pl.read_parquet(first_run / "scores.parquet"), pl.read_parquet(out / "scores.parquet")
    )


def test_failing_stage_leaves_previous_output_untouched(
    first_run: Path, generated_operator: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(first_run, out)
    before = {name: (out / name).read_bytes() for name in run_files()}

    def boom(ctx: object, profile: pl.DataFrame) -> StageOutput:
        raise RuntimeError("simulated failure")

    stages = pipeline("run", ["profile", "valuation"])
    stages.insert(2, Stage("explode", boom, ("profile",), ("nothing",)))
    cfg = load_config(
        None, {"data.dir": str(generated_operator), "output.dir": str(out), "data.as_of": AS_OF}
    )
    with pytest.raises(StageError, match="stage explode failed: RuntimeError: simulated failure"):
        run_pipeline(cfg, stages, tracking=False)
    after = {name: (out / name).read_bytes() for name in run_files()}
    assert after == before
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_bad_input_writes_nothing(generated_operator: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(generated_operator, data)
    part = data / "surveys" / "part-00000.parquet"
    pl.read_parquet(part).with_columns(pl.lit(42).cast(pl.Int64).alias("nps")).write_parquet(part)
    out = tmp_path / "out"
    code, output = run_cli(data, out)
    assert code == 1
    assert "surveys" in output and "nps outside 0-10" in output
    assert not out.exists()


def test_skipped_stages_leave_typed_null_columns(generated_operator: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = run_cli(generated_operator, out, "--no-tracking", "--stages", "profile")
    assert code == 0, output
    assert check_scores_file(out / "scores.parquet") == []
    scores = pl.read_parquet(out / "scores.parquet")
    for col in ("segment_id", "clv", "churn_probability", "churn_drivers", "loyalty_score"):
        assert scores[col].null_count() == scores.height, col
    assert scores["tenure_days"].null_count() == 0
    assert "stage not run" in (out / "report.html").read_text()


def test_score_only_from_registry_rebuilds_the_same_scores(
    first_run: Path, generated_operator: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "out"
    shutil.copytree(first_run, out)  # the embedded MLflow store with the registered models
    original = _files_digest(first_run / "mlartifacts") | {
        "db": file_sha256(first_run / "mlflow.db")
    }
    # someone who can write the store plants code in the models' entry files: scoring reads
    # the models' files as data and never runs it
    planted = tmp_path / "planted-code-ran"
    entries = list((out / "mlartifacts").rglob("*_entry.py"))
    assert entries
    for entry in entries:
        entry.write_text(f"open({str(planted)!r}, 'w').close()\n" + entry.read_text())
    code, output = run_cli(generated_operator, out, "--score-only", "--registry")
    assert code == 0, output
    assert not planted.exists()
    # the copy logs into, and loads its models from, its own artifacts: the original is untouched
    assert original == _files_digest(first_run / "mlartifacts") | {
        "db": file_sha256(first_run / "mlflow.db")
    }
    with sqlite3.connect(out / "mlflow.db") as con:
        locations = [r[0] for r in con.execute("select artifact_uri from runs")]
        locations += [r[0] for r in con.execute("select storage_location from model_versions")]
    assert locations and all(
        loc.startswith((out.resolve() / "mlartifacts").as_uri()) for loc in locations
    ), locations
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["model_versions"]) == {"churn", "loyalty", "segmentation", "clv"}
    assert all(v.startswith("models:/crm-") for v in manifest["model_versions"].values())
    assert "valuation.holdout" not in json.dumps(manifest["metrics"]), "no refit in score-only"
    assert_frame_equal(
        pl.read_parquet(first_run / "scores.parquet"), pl.read_parquet(out / "scores.parquet")
    )


def test_report_of_a_real_run(first_run: Path, generated_operator: Path) -> None:
    text = (first_run / "report.html").read_text()
    assert "Save first" in text and "stage not run" not in text
    customers = pl.scan_parquet(generated_operator / "customers" / "*.parquet")
    n_customers = customers.select(pl.len()).collect().item()
    scored = pl.read_parquet(first_run / "scores.parquet").height
    assert f"<b>{scored:,} customers scored</b> of the {n_customers:,} in the" in text
    assert "href='save_first.csv'" in text
    # the money of a retention campaign: its contact set is band high, the curve is drawn
    retention = json.loads((first_run / "manifest.json").read_text())["churn"]["retention"]
    scores = pl.read_parquet(first_run / "scores.parquet")
    assert retention["contacts"] == (scores["churn_risk_band"] == "high").sum() > 0
    assert retention["expected_profit"] == pytest.approx(
        scores.filter(pl.col("retention_profit") > 0)["retention_profit"].sum()
    )
    assert retention["empc"] > 0 and 0 < retention["empc_share"] < 1
    assert "Who is worth a retention offer" in text and 'alt="churn_profit"' in text
    assert f"{retention['contacts']:,} of {retention['candidates']:,} customers" in text
    # who takes others with them: the contagion estimate and the network columns agree
    contagion = json.loads((first_run / "manifest.json").read_text())["churn"]["contagion"]
    assert contagion["significant"] and contagion["ci_low"] > 0  # the generator plants it
    assert scores["network_value"].null_count() == 0 and (scores["network_value"] >= 0).all()
    assert contagion["value_at_risk_network"] == pytest.approx(
        scores["value_at_risk_network"].sum()
    )
    assert (scores.filter(pl.col("churn_risk_band") == "lost")["value_at_risk_network"] == 0).all()
    assert contagion["customers_with_network_value"] == (scores["network_value"] > 0).sum() > 0
    assert "Who takes others with them" in text and 'alt="churn_network"' in text
    assert f"by <b>{contagion['odds_factor']:.2f}</b>" in text
    # does the value hold up: a year's revenue forecast per plan and model, in the report
    revenue = json.loads((first_run / "manifest.json").read_text())["valuation"]["revenue_holdout"]
    models = {(r["plan_type"], r["model"]) for r in revenue["rows"]}
    assert models == {
        ("prepaid", "bgnbd"),
        ("postpaid", "bgnbd"),
        ("postpaid", "sbg"),
        ("postpaid", "hazard"),
    }
    assert "Does the value hold up?" in text and "contract (sbg)" in text
    kept = set(scores.filter(pl.col("plan_type") == "postpaid")["value_model"]) - {"mbgnbd"}
    assert kept == {revenue["postpaid_choice"]}
    # the renewals ahead: postpaid terms ending month by month, drawn in the value section
    ends = json.loads((first_run / "manifest.json").read_text())["valuation"]["contract_ends"]
    assert len(ends) == 12 and all(e["customers"] > 0 for e in ends)
    assert "Contract ends coming up" in text and 'alt="Contract ends coming up"' in text
    require_browser()
    page = check_page(first_run / "report.html")
    assert page.images >= 10 and page.broken_images == [] and page.console_errors == []
    assert page.uncaptioned_images == []
    for layout in page.layouts:
        assert layout.scroll_width <= layout.inner_width, layout
        assert layout.off_screen == [] and layout.scrolled_tables == [], layout


def test_save_first_csv_is_the_top_of_the_scores(first_run: Path) -> None:
    scores = pl.read_parquet(first_run / "scores.parquet")
    first = pl.read_csv(first_run / "save_first.csv", schema_overrides={"customer_id": pl.Int64})
    assert set(first.columns) <= set(scores.columns)  # no personal data the scores lack
    # the customers worth an offer (band high), most profitable first
    worth = scores.filter(pl.col("retention_profit") > 0)
    assert worth.height > 0 and set(worth["churn_risk_band"]) == {"high"}
    assert first.columns[0] == "customer_id" and first.height == min(100, worth.height)
    assert "dormant" not in worth["lifecycle_stage"].to_list()
    top = worth.sort(["retention_profit", "customer_id"], descending=[True, False]).head(100)
    assert first["customer_id"].to_list() == top["customer_id"].to_list()


def test_mlflow_copy_of_the_report_has_no_customer_rows(first_run: Path) -> None:
    from mlflow import MlflowClient

    manifest = json.loads((first_run / "manifest.json").read_text())
    client = MlflowClient(tracking_uri=manifest["tracking_uri"])
    path = client.download_artifacts(
        manifest["mlflow_run_id"], "report.html", str(first_run.parent)
    )
    text = Path(path).read_text()
    assert "Who is about to leave" in text
    assert "Save first" not in text


def test_rerun_in_place_keeps_segment_ids_and_reports_migration(
    first_run: Path, generated_operator: Path, tmp_path: Path
) -> None:
    """Next month's run (other profiles, another clustering seed) keeps what the ids mean."""
    out = tmp_path / "out"
    shutil.copytree(first_run, out)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text("[segmentation]\nseed = 5\n")
    result = runner.invoke(
        app,
        ["run", str(cfg), "--data", str(generated_operator), "--out", str(out), "--quiet",
         "--as-of", "2024-11-01", "--no-tracking", "--stages", "segmentation"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    seg = json.loads((out / "manifest.json").read_text())["segmentation"]
    assert seg["aligned"] is True and seg["same_segment_share"] >= SAME_SEGMENT_SHARE
    after = pl.read_parquet(out / "scores.parquet").select("customer_id", "segment_id")
    moved = sum(r["customers"] for r in seg["migration"])
    assert moved == after.height
    before = pl.read_parquet(first_run / "scores.parquet").select("customer_id", "segment_id")
    both = before.join(after, on="customer_id", suffix="_next")
    assert both.height > 0.9 * before.height
    kept = (both["segment_id"] == both["segment_id_next"]).mean()
    assert kept >= SAME_SEGMENT_SHARE, kept


def test_rfm_facts_come_from_the_profile_not_a_recomputation(first_run: Path) -> None:
    scores = pl.read_parquet(first_run / "scores.parquet")
    profile = pl.read_parquet(first_run / "profiles.parquet")
    joined = scores.join(profile, on="customer_id", suffix="_profile")
    no_repeat = joined.filter(pl.col("frequency") == 0)
    assert no_repeat.height > 0
    assert no_repeat["monetary_avg"].null_count() == no_repeat.height  # was 0.0
    repeat = joined.filter(pl.col("frequency") > 0)
    assert (repeat["monetary_avg"] == repeat["monetary_value"]).all()
    never = joined.filter(~pl.col("has_purchase"))
    assert never["recency_days"].null_count() == never.height


def _churn_score_against(run_out: Path, data: Path, out: Path, *extra: str) -> Result:
    """``crm-engine churn score`` with a config whose output.dir is ``run_out`` (no URI given)."""
    cfg = out.parent / "pipeline.toml"
    cfg.write_text(f'[output]\ndir = "{run_out}"\n')
    return runner.invoke(
        app,
        ["churn", "score", "--data", str(data), "--as-of", AS_OF, "--out", str(out),
         "--config", str(cfg), *extra],
    )  # fmt: skip


def test_churn_score_after_run_finds_the_run_store(
    first_run: Path, generated_operator: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One tracking store: churn score with the run's config finds the models run registered."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "churn.parquet"
    result = _churn_score_against(first_run, generated_operator, out)
    assert result.exit_code == 0, result.output
    churn = pl.read_parquet(out).select("customer_id", "churn_probability")
    run = pl.read_parquet(first_run / "scores.parquet").select("customer_id", "churn_probability")
    assert_frame_equal(churn.sort("customer_id"), run.sort("customer_id"))


class _Planted:
    """A pickle that would create a file when loaded (what a hostile model file could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_a_model_file_that_changed_since_its_run_is_not_loaded(
    first_run: Path, generated_operator: Path, tmp_path: Path
) -> None:
    import pickle

    out = tmp_path / "out"
    shutil.copytree(first_run, out)
    marker = tmp_path / "code-ran"
    model = out / "current" / "segmentation_model.skops"
    assert model.is_file()
    model.write_bytes(pickle.dumps(_Planted(marker)))
    before = (out / "scores.parquet").read_bytes()
    code, output = run_cli(generated_operator, out, "--no-tracking", "--stages", "segmentation")
    assert code == 1
    assert "does not match the sha256 its run recorded: not loading it" in output
    assert not marker.exists()
    assert (out / "scores.parquet").read_bytes() == before


def test_score_only_without_a_store_is_one_line_and_creates_nothing(
    generated_operator: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "new"
    code, output = run_cli(generated_operator, out, "--score-only")
    assert code == 1
    assert f"no tracking store at sqlite:///{out.resolve()}/mlflow.db" in output
    assert "Traceback" not in output
    assert not out.exists()


def test_a_missing_model_is_one_line(
    first_run: Path, generated_operator: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "churn.parquet"
    result = _churn_score_against(
        first_run, generated_operator, out, "--model", "models:/crm-churn/99"
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("error: model models:/crm-churn/99 could not be loaded from")
    assert "Traceback" not in result.output
    assert not out.exists()


def test_a_normal_run_is_quiet(
    generated_operator: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No MLflow database-init, registry or input-example chatter on the terminal."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, output = run_cli(generated_operator, tmp_path / "out", "--stages", "segmentation")
    assert code == 0, output
    for chatter in (
        "Creating initial MLflow database",
        "Successfully registered model",
        "Validating input example",
        "CloudPickle",
        "UserWarning",
    ):
        assert chatter not in output, chatter
