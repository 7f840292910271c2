"""The analyst report: sections for every stage, honest about skipped ones, renders in Chromium."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from crm_engine.report import ReportInputs, write_report
from crm_engine.scores import conform_scores
from crm_engine.stage_reports import ChurnReport, FeatureImportance, SpendReport, ValuationReport
from tests.report_browser import SKIP_REASON, browser_available, check_page

AS_OF = dt.date(2025, 1, 1)


def _scores(n: int = 400, full: bool = True) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    base = pl.DataFrame(
        {
            "customer_id": np.arange(n),
            "as_of": [AS_OF] * n,
            "age_band": rng.choice(["<25", "25-34", "35-49", "50-64", "65+"], n),
            "region": rng.choice(["north", "south", "capital"], n),
            "area_type": rng.choice(["urban", "rural"], n),
            "plan_type": rng.choice(["prepaid", "postpaid"], n),
            "tenure_days": rng.integers(10, 3000, n),
        }
    )
    if full:
        clv = rng.gamma(2.0, 50.0, n)
        p = rng.beta(1, 8, n)
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
            metrics={"churn.roc_auc": 0.81, "churn.brier": 0.07},
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
    )


def test_full_report_has_every_section_and_picture(tmp_path: Path) -> None:
    path = write_report(_inputs(True, tmp_path), tmp_path / "report.html")
    text = path.read_text()
    for part in (
        "Who our customers are",
        "What they are worth",
        "Who is about to leave",
        "Data quality",
        "refunds (negative amounts)",
        "Lift and capture by risk decile",
        "Reliability curve",
        "Top churn drivers overall",
        "Where retention money matters most",
        "Save first",
    ):
        assert part in text, part
    assert text.count("data:image/png;base64,") >= 8
    # The valuation model in an analyst's words, not a raw dict
    for part in ("r=3.383", "every 13 days", "0.52%", "66.85", "-0.02 (independent enough)"):
        assert part in text, part
    assert "3.38329923976963" not in text
    assert "not run" not in text


def test_skipped_stages_are_said_not_hidden(tmp_path: Path) -> None:
    text = write_report(_inputs(False, tmp_path), tmp_path / "report.html").read_text()
    assert "Segmentation stage not run" in text
    assert "Valuation stage not run" in text
    assert "Churn stage not run" in text


@pytest.mark.skipif(not browser_available(), reason=SKIP_REASON)
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    path = write_report(_inputs(True, tmp_path), tmp_path / "report.html")
    page = check_page(path)
    assert page.images >= 8
    assert page.broken_images == []
    assert page.console_errors == []
    assert "crm-engine report" in page.title
    assert "Data quality" in page.headings
