"""The analyst report: sections for every stage, honest about skipped ones, renders in Chromium.

Also the views it is built from (value x risk matrix, lifecycle funnel, loyalty split) and the
save-first list exported beside it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from crm_engine import parts as parts_module
from crm_engine.parts import FrameParts
from crm_engine.report import (
    SAVE_FIRST_COLUMNS,
    Logged,
    ReportInputs,
    lifecycle_funnel,
    loyalty_split,
    render_report,
    save_first,
    value_risk_matrix,
    write_report,
)
from crm_engine.scores import conform_scores
from crm_engine.stage_reports import (
    BacktestReport,
    ChurnBacktest,
    ChurnReport,
    FeatureImportance,
    PopulationReport,
    SpendReport,
    ValuationReport,
    ValueBacktest,
)
from tests.report_browser import WIDTHS, check_page, require_browser

AS_OF = dt.date(2025, 1, 1)


def _scores(n: int = 400, full: bool = True) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    base = pl.DataFrame(
        {
            "customer_id": np.arange(n),
            "as_of": [AS_OF] * n,
            "age_band": rng.choice(["<25", "25-34", "35-49", "50-64", "65+", "unknown"], n),
            "region": rng.choice(["north", "south", "capital"], n),
            "area_type": rng.choice(["urban", "rural"], n),
            "plan_type": rng.choice(["prepaid", "postpaid"], n),
            "tenure_days": rng.integers(10, 3000, n),
        }
    )
    if full:
        clv = rng.gamma(2.0, 50.0, n)
        p = rng.beta(1, 8, n)
        features = ["open_tickets", "tenure_days", "last_nps", "region"]
        drivers = [
            [
                {"feature": features[(i + k) % 4], "contribution": 0.3 - 0.1 * k}
                for k in range(i % 4)
            ]
            for i in range(n)
        ]
        base = base.with_columns(
            spend_level=pl.Series(rng.choice(["low", "medium", "high"], n)),
            segment_id=pl.Series(rng.integers(0, 4, n)),
            clv=pl.Series(clv),
            value_tier=pl.Series(rng.choice(["bronze", "silver", "gold", "platinum"], n)),
            lifecycle_stage=pl.Series(rng.choice(["new", "active", "at_risk", "dormant"], n)),
            churn_probability=pl.Series(p),
            churn_risk_band=pl.Series(
                np.where(p > 0.3, "high", np.where(p > 0.1, "medium", "low"))
            ),
            value_at_risk=pl.Series(p * clv),
            churn_drivers=pl.Series(drivers),
            loyalty_score=pl.Series(rng.random(n)),
            loyalty_class=pl.Series(rng.choice(["promoter", "passive", "detractor"], n)),
        ).with_columns(segment_name=pl.format("Segment {}", pl.col("segment_id")))
    return conform_scores(base)


VALUATION = ValuationReport(
    model="bgnbd",
    time_unit="days",
    params={"r": 3.38329923976963, "alpha": 44.41251428684179, "a": 2.387, "b": 460.914},
    population_rates_per_day={"purchase_rate": 0.0762, "dropout": 0.00515},
    log_likelihood=-1234.5,
    n_customers_fitted=350,
    n_distinct_triples=300,
    penalizer=0.0,
    spend=SpendReport(
        model="gamma_gamma",
        params={"p": 6.0, "q": 4.0, "v": 15.0},
        population_mean=66.847,
        log_likelihood=-987.6,
        n_customers_fitted=300,
        n_customers_excluded=2,
        frequency_monetary_corr=-0.024,
    ),
    horizon_days=365,
    annual_discount_rate=0.1,
    monthly_discount_rate=0.008,
    margin=0.3,
    n_customers_scored=400,
    n_customers_without_purchase=50,
    total_clv=40_000.0,
    mean_p_alive=0.8,
    tier_cut_points={"silver": 80.0, "gold": 150.0, "platinum": 260.0},
    tier_counts={"bronze": 200, "silver": 120, "gold": 60, "platinum": 20},
    lifecycle_counts={"new": 40, "active": 250, "at_risk": 70, "dormant": 40},
)


def _churn_images(directory: Path) -> dict[str, Path]:
    """The churn stage's own figures, drawn from made-up out-of-time outcomes."""
    from churn.plots import plot_importance, plot_lift, plot_reliability

    rng = np.random.default_rng(1)
    p = rng.beta(1, 8, 2_000)
    y = (rng.random(2_000) < p).astype(np.int8)
    importance = pl.DataFrame(
        {
            "feature": ["open_tickets", "tenure_days", "last_nps"],
            "mean_abs_contribution": [0.4, 0.3, 0.2],
        }
    )
    return {
        "churn_lift": plot_lift(y, p, directory / "lift.png"),
        "churn_reliability": plot_reliability(y, p, directory / "reliability.png"),
        "churn_importance": plot_importance(importance, directory / "importance.png"),
    }


def _inputs(full: bool, directory: Path) -> ReportInputs:
    churn = (
        ChurnReport(
            metrics={
                "churn.roc_auc": 0.81,
                "churn.brier": 0.07,
                "churn.raw_log_loss": 0.21,
                "churn.best_iteration": 205.0,
                "churn.n": 1_000.0,
                "churn.capture_top_decile": 0.29,
                "churn.lift_top_decile": 2.9,
                "churn.mean_prediction": 0.054,
                "churn.base_rate": 0.052,
                "churn.train_rows": 13_305.0,
                "loyalty.train_rows": 1_084.0,
                "loyalty.accuracy": 0.69,
                "loyalty.n": 577.0,
                "loyalty.log_loss": 0.69,
            },
            features=["open_tickets", "tenure_days", "last_nps"],
            importance=[FeatureImportance("open_tickets", 0.4)],
            train_cut=dt.date(2024, 7, 5),
            valid_cut=dt.date(2024, 10, 3),
            horizon_days=90,
        )
        if full
        else None
    )
    seg = pl.DataFrame({"segment_id": [0, 1], "segment_name": ["A", "B"], "size": [200, 200]})
    return ReportInputs(
        scores=_scores(full=full),
        as_of=AS_OF,
        run_id="test-run",
        segment_profiles=seg if full else None,
        churn=churn,
        valuation=VALUATION if full else None,
        warnings=[
            {
                "table": "transactions",
                "column": "amount",
                "rows": 12,
                "message": "refunds (negative amounts)",
            }
        ],
        images=_churn_images(directory) if full else {},
        population=POPULATION,
        currency="EUR" if full else None,
        save_first_file="save_first.csv" if full else None,
        backtest=BACKTEST if full else None,
        logged=(
            {
                "valuation": Logged({"valuation.log_likelihood": -1234.5}, {"valuation.r": 3.38}),
                "churn": Logged(churn.metrics, {"train_cut": "2024-07-05"}),
            }
            if churn is not None
            else {}
        ),
    )


BACKTEST = BacktestReport(
    run_id="20241001T000000Z-earlier0",
    as_of=dt.date(2024, 10, 1),
    checked_to=AS_OF,
    churn=ChurnBacktest(
        horizon_days=90,
        elapsed_days=90,
        elapsed_share=1.0,
        customers=380,
        churned=19,
        roc_auc=0.7312,
        lift_top_decile=2.6,
        capture_top_decile=0.26,
        brier=0.046,
        mean_predicted=0.055,
        realised_rate=0.05,
        by_band=[
            {
                "churn_risk_band": "high",
                "customers": 30,
                "churned": 6,
                "mean_predicted": 0.2,
                "realised_rate": 0.2,
            },
            {
                "churn_risk_band": "low",
                "customers": 350,
                "churned": 13,
                "mean_predicted": 0.04,
                "realised_rate": 13 / 350,
            },
        ],
        by_decile=[
            {"decile": d, "customers": 38, "mean_predicted": 0.01 * d, "realised_rate": 0.009 * d}
            for d in range(1, 11)
        ],
        save_list={"customers": 25, "churned": 5, "realised_rate": 0.2},
    ),
    value=ValueBacktest(
        horizon_days=365,
        elapsed_days=92,
        elapsed_share=92 / 365,
        basis="expected_purchases x expected_avg_value x the elapsed share",
        customers=380,
        mae=21.5,
        mean_predicted=40.0,
        mean_realised=38.0,
        p_alive_auc=0.8123,
        bought_rate=0.7,
        by_plan=[
            {
                "plan_type": "postpaid",
                "customers": 150,
                "mean_predicted": 80.0,
                "mean_realised": 79.0,
                "mae": 9.75,
            },
            {
                "plan_type": "prepaid",
                "customers": 230,
                "mean_predicted": 14.0,
                "mean_realised": 12.0,
                "mae": 29.25,
            },
        ],
        by_tier=[
            {
                "value_tier": "bronze",
                "customers": 95,
                "mean_predicted": 5.0,
                "mean_realised": 4.0,
                "mae": 4.5,
            },
            {
                "value_tier": "platinum",
                "customers": 95,
                "mean_predicted": 120.0,
                "mean_realised": 118.0,
                "mae": 30.0,
            },
        ],
    ),
    skipped=[{"run_id": "20240901T000000Z-older000", "reason": "its scores contract is 'x'"}],
)
OLDER = BacktestReport(
    run_id="20240701T000000Z-earlier1",
    as_of=dt.date(2024, 7, 1),
    checked_to=AS_OF,
    churn=dataclasses.replace(
        BACKTEST.churn,  # type: ignore[type-var]
        roc_auc=0.6987,
        mean_predicted=0.061,
        realised_rate=0.048,
        save_list=None,
    ),
    value=dataclasses.replace(
        BACKTEST.value,  # type: ignore[type-var]
        elapsed_days=184,
        elapsed_share=184 / 365,
        mean_predicted=81.0,
        mean_realised=77.5,
        mae=44.25,
        p_alive_auc=0.8456,
    ),
)
BACKTEST = dataclasses.replace(BACKTEST, runs=[dataclasses.replace(BACKTEST, skipped=[]), OLDER])


POPULATION = PopulationReport(
    n_customers=520, n_scored=400, n_churned_before_as_of=90, n_not_yet_signed_up=30
)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a run where every stage ran, rendered once for the tests that read it."""
    directory = tmp_path_factory.mktemp("report")
    return write_report(_inputs(True, directory), directory / "report.html")


def test_full_report_has_every_section_and_picture(full_report: Path) -> None:
    text = full_report.read_text()
    for part in (
        "Where to act",
        "Who our customers are",
        "Where they are in their life with us",
        "What they are worth",
        "Who is about to leave",
        "How loyal they are",
        "Data quality",
        "Appendix for data scientists",
        "refunds (negative amounts)",
        "Since the last run",
        "Did the churn scores come true?",
        "Lift and capture by risk decile",
        "Reliability curve",
        "Top churn drivers overall",
        "Where retention money matters most",
        "Save first",
        "href='save_first.csv'",
    ):
        assert part in text, part
    assert text.count("data:image/png;base64,") >= 10
    # The valuation model in an analyst's words, not a raw dict
    for part in ("r=3.383", "every 13 days", "0.52%", "66.85", "-0.02 (independent enough)"):
        assert part in text, part
    assert "3.38329923976963" not in text
    assert "not run" not in text


def test_header_says_why_fewer_customers_are_scored(full_report: Path, tmp_path: Path) -> None:
    text = full_report.read_text()
    assert "<b>400 customers scored</b> of the 520 in the customers table" in text
    assert "90 had already left before 2025-01-01 and 30 sign up on or after 2025-01-01" in text
    inp = _inputs(True, tmp_path)
    inp.population = PopulationReport(
        n_customers=460, n_scored=400, n_churned_before_as_of=60, n_not_yet_signed_up=0
    )
    text = write_report(inp, tmp_path / "r.html").read_text()
    assert "of the 460 in the customers table: 60 had already left before 2025-01-01; " in text


def test_raw_model_metrics_only_in_the_appendix(full_report: Path) -> None:
    text = full_report.read_text()
    appendix = text.index("Appendix for data scientists")
    for raw in ("raw_log_loss", "best_iteration", "roc_auc", "loyalty.log_loss"):
        assert appendix < text.index(raw), raw
    # ... and the body says the same in words
    assert "Ranking quality (AUC: 0.5 is chance, 1 is perfect)" in text
    assert "29% of all (2.9x chance)" in text


def test_currency_from_config_in_money_titles(full_report: Path, tmp_path: Path) -> None:
    text = full_report.read_text()
    for title in ("total CLV (EUR)", "value at risk (EUR)", "CLV (EUR)", "Value at risk (EUR)"):
        assert title in text, title
    assert "(units)" not in text
    plain = _inputs(True, tmp_path)
    plain.currency = None
    text = write_report(plain, tmp_path / "plain.html").read_text()
    assert "total CLV (units)" in text and "Value at risk (units)" in text
    assert "(EUR)" not in text


def test_value_risk_matrix_adds_up_to_the_scores() -> None:
    scores = _scores()
    matrix = value_risk_matrix(scores)
    assert matrix["customers"].sum() == scores.height
    assert matrix["value_at_risk"].sum() == pytest.approx(scores["value_at_risk"].sum())
    tiers = list(dict.fromkeys(matrix["value_tier"]))
    bands = list(dict.fromkeys(matrix["churn_risk_band"]))
    assert tiers == ["platinum", "gold", "silver", "bronze"]
    assert bands == ["high", "medium", "low"]
    assert matrix.height == len(tiers) * len(bands)  # empty cells are rows too
    cell = matrix.filter(value_tier="gold", churn_risk_band="high")
    expected = scores.filter(value_tier="gold", churn_risk_band="high")
    assert cell["customers"].item() == expected.height
    assert cell["value_at_risk"].item() == pytest.approx(expected["value_at_risk"].sum())


def test_value_risk_matrix_takes_a_lost_band_and_missing_values() -> None:
    scores = _scores(40).with_columns(
        churn_risk_band=pl.when(pl.col("lifecycle_stage") == "dormant")
        .then(pl.lit("lost"))
        .otherwise(pl.col("churn_risk_band")),
        value_tier=pl.when(pl.col("customer_id") == 0).then(None).otherwise(pl.col("value_tier")),
    )
    matrix = value_risk_matrix(scores)
    assert list(dict.fromkeys(matrix["churn_risk_band"]))[-1] == "lost"
    assert list(dict.fromkeys(matrix["value_tier"]))[-1] == "unknown"
    assert matrix["customers"].sum() == 40


def test_lifecycle_funnel_counts_in_stage_order() -> None:
    scores = _scores()
    funnel = lifecycle_funnel(scores)
    assert funnel["lifecycle_stage"].to_list() == ["new", "active", "at_risk", "dormant"]
    counts = dict(scores["lifecycle_stage"].value_counts().iter_rows())
    assert dict(zip(funnel["lifecycle_stage"], funnel["customers"], strict=True)) == counts
    assert funnel["share"].sum() == pytest.approx(1.0)
    new = scores.filter(lifecycle_stage="new")
    assert funnel["clv"][0] == pytest.approx(new["clv"].sum())
    lost = scores.with_columns(lifecycle_stage=pl.lit("lost")).head(3)
    assert lifecycle_funnel(pl.concat([scores, lost]))["lifecycle_stage"][-1] == "lost"


def test_loyalty_split_overall_and_by_segment() -> None:
    scores = _scores()
    overall = loyalty_split(scores)
    assert overall["group"].to_list() == ["All customers"]
    assert overall["customers"].item() == scores.height
    row = overall.row(0, named=True)
    assert row["promoter"] + row["passive"] + row["detractor"] == pytest.approx(1.0)
    assert row["promoter"] == pytest.approx((scores["loyalty_class"] == "promoter").mean())
    by = loyalty_split(scores, "segment_name")
    assert by["customers"].sum() == scores.height
    assert by["customers"].is_sorted(descending=True)


def test_loyalty_says_how_many_survey_answers_it_learned_from(full_report: Path) -> None:
    text = full_report.read_text()
    assert "trained on 1,084 survey answers" in text
    assert "right class for 69% of 577 later answers" in text


def test_segment_cards_replace_the_wide_table(full_report: Path) -> None:
    text = full_report.read_text()
    assert text.count("<div class='seg'>") == 4
    assert "<th>segment_id</th>" not in text and "<th>Segment id</th>" not in text


def test_save_first_is_the_top_by_value_at_risk_without_dormant() -> None:
    scores = _scores()
    first = save_first(scores, 25)
    assert first.columns == [*SAVE_FIRST_COLUMNS, "churn_reasons"]
    assert set(first.columns) <= set(scores.columns)  # nothing the scores do not already hold
    assert first.height == 25
    assert first["value_at_risk"].is_sorted(descending=True)
    assert "dormant" not in first["lifecycle_stage"].to_list()
    eligible = scores.filter(pl.col("lifecycle_stage") != "dormant")
    top = eligible.sort("value_at_risk", descending=True).head(25)
    assert first["customer_id"].to_list() == top["customer_id"].to_list()
    assert save_first(scores, 10_000).height == eligible.height


def test_save_first_uses_reasons_in_words_and_leaves_lost_out() -> None:
    scores = _scores().with_columns(
        churn_reasons=pl.concat_list(
            pl.format("5G coverage {}% (low), raises risk", pl.col("customer_id")),
            pl.lit("open complaint, raises risk"),
        ),
        churn_risk_band=pl.when(pl.col("customer_id") % 5 == 0)
        .then(pl.lit("lost"))
        .otherwise(pl.col("churn_risk_band")),
    )
    first = save_first(scores)
    assert first.columns == [*SAVE_FIRST_COLUMNS, "churn_reasons"]
    assert "lost" not in first.join(scores, on="customer_id")["churn_risk_band"].to_list()
    cid = first["customer_id"][0]
    assert first["churn_reasons"][0] == (
        f"5G coverage {cid}% (low), raises risk; open complaint, raises risk"
    )


def test_save_first_without_churn_scores_is_empty() -> None:
    first = save_first(_scores(full=False))
    assert first.height == 0
    assert "customer_id" in first.columns


def test_mlflow_copy_leaves_customers_out(tmp_path: Path) -> None:
    inp = _inputs(True, tmp_path)
    inp.customer_rows, inp.save_first_file = False, None
    text = write_report(inp, tmp_path / "report.html").read_text()
    assert "Save first" not in text and "save_first.csv" not in text
    assert "Where to act" in text  # the aggregate matrix stays


def test_skipped_stages_are_said_not_hidden(tmp_path: Path) -> None:
    text = write_report(_inputs(False, tmp_path), tmp_path / "report.html").read_text()
    assert "Segmentation stage not run" in text
    assert "Valuation stage not run" in text
    assert "Churn stage not run" in text
    assert "(units)" not in text or "CLV" not in text


def test_report_renders_in_headless_chromium(full_report: Path) -> None:
    require_browser()
    page = check_page(full_report)
    assert page.images >= 10
    assert page.broken_images == []
    assert page.console_errors == []
    assert page.uncaptioned_images == []
    assert "crm-engine report" in page.title
    assert "Data quality" in page.headings
    assert "Appendix for data scientists" in page.headings
    new_views = {"act", "value-risk-matrix", "save-first", "segment-cards", "lifecycle", "loyalty"}
    assert new_views <= set(page.ids)
    assert [layout.width for layout in page.layouts] == list(WIDTHS)
    for layout in page.layouts:
        assert layout.inner_width == layout.width
        assert layout.scroll_width <= layout.inner_width, layout
        assert layout.off_screen == [], layout
        assert layout.scrolled_tables == [], layout


def test_since_the_last_run_says_what_came_true(full_report: Path, tmp_path: Path) -> None:
    text = full_report.read_text()
    section = text[text.index("id='since'") : text.index("id='quality'")]
    for part in (
        "20241001T000000Z-earlier0",
        "0.731",  # churn AUC on what happened
        "2.60 (26% of the leavers)",
        "6 of 30 left (20.0%; predicted 20.0%)",  # the high band
        "5 of 25 left",  # the save-first list
        "all of its 90-day horizon has passed",
        "25% of its horizon has passed (92 days so far)",
        "ROC-AUC 0.812 (70% bought again)",
        "plan: postpaid",
        "tier: platinum",
        "29.2",  # the prepaid MAE (EUR)
        "20240901T000000Z-older000",  # a run passed over, and why
    ):
        assert part in section, part
    # tiers in the contract's order, not alphabetical
    assert section.index("tier: platinum") < section.index("tier: bronze")
    # every earlier run checked: one row each in the churn and value tables, and a chart
    assert "Every earlier run checked (2)" in section
    for part in (
        "2024-07-01<br><code>20240701T000000Z-earlier1</code>",
        "0.699",  # the older run's churn AUC
        "100.0% (90 d)",  # its churn horizon passed
        "50.4% (184 d)",  # half its CLV horizon passed
        "25.2% (92 d)",  # a quarter of the later run's
        "44.2",  # the older run's revenue MAE
        "0.846",
    ):
        assert part in section, part
    assert section.count("20241001T000000Z-earlier0") == 3  # the facts and both tables
    assert section.count("data:image/png;base64,") == 2
    inp = _inputs(True, tmp_path)
    inp.backtest = None
    first = write_report(inp, tmp_path / "first.html").read_text()
    assert "No earlier committed run in this output directory to check yet." in first


def test_the_shared_copy_is_the_report_without_customer_rows(tmp_path: Path) -> None:
    """The copy for MLflow, written beside the analyst's report with the sections that show no
    customer reused, is what rendering it without customer rows gives: no save-first list, no
    customer ids, every picture."""
    inp = _inputs(True, tmp_path)
    analyst = write_report(inp, tmp_path / "report.html", tmp_path / "shared.html").read_text()
    shared = (tmp_path / "shared.html").read_text()
    public = dataclasses.replace(inp, customer_rows=False, save_first_file=None)
    assert shared == render_report(public)
    assert "save_first.csv" in analyst and "save_first.csv" not in shared
    assert shared.count("data:image/png;base64,") == analyst.count("data:image/png;base64,")
    for customer in inp.scores.sort("value_at_risk", descending=True).head(3)["customer_id"]:
        assert f">{customer}<" in analyst and f">{customer}<" not in shared


@pytest.mark.parametrize(
    "view",
    [
        value_risk_matrix,
        lifecycle_funnel,
        loyalty_split,
        lambda s: loyalty_split(s, by="region"),
        lambda s: save_first(s, 25),
    ],
    ids=["value_risk_matrix", "lifecycle_funnel", "loyalty", "loyalty_by_region", "save_first"],
)
def test_a_view_of_scores_in_parts_is_the_view_of_the_frame(
    view: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each view reads the scores where they lie (parts of 37 rows here, the executors' files
    with Spark) and gives what it gives of the whole frame, sums to float rounding."""
    assert callable(view)
    scores = _scores(n=1_000).with_columns(
        loyalty_class=pl.when(pl.col("customer_id") % 7 == 0).then(None).otherwise("loyalty_class")
    )
    whole = view(scores)
    monkeypatch.setattr(parts_module, "WRITE_ROWS", 37)
    sliced = view(FrameParts(scores.sample(fraction=1.0, shuffle=True, seed=2)))
    assert whole.height >= 1
    assert_frame_equal(sliced, whole, check_exact=False, rel_tol=1e-12)


def test_the_report_of_scores_in_parts_is_the_report_of_the_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every section reads aggregates of the scores (counts, sums, bins, a top few), so the
    report of the scores in parts of 37 rows, in another order, says what the report of the
    frame says, pictures included."""
    inp = _inputs(True, tmp_path)
    whole = render_report(inp)
    monkeypatch.setattr(parts_module, "WRITE_ROWS", 37)
    shuffled = inp.scores.sample(fraction=1.0, shuffle=True, seed=5)
    sliced = render_report(dataclasses.replace(inp, scores=FrameParts(shuffled)))
    assert sliced == whole
