"""The analyst report: sections for every stage, honest about skipped ones, renders in Chromium."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from crm_engine.report import ReportInputs, write_report
from crm_engine.scores import conform_scores
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


def _inputs(full: bool) -> ReportInputs:
    churn = {
        "roc_auc": 0.81,
        "brier": 0.07,
        "lift_curve": {"decile": list(range(1, 11)), "lift": [3.1, 2.0, 1.4, 1.1, 0.9, 0.7, 0.5,
                                                               0.2, 0.1, 0.0]},
        "reliability": {"mean_predicted": [0.05, 0.15, 0.3],
                        "fraction_positive": [0.04, 0.17, 0.28]},
        "global_importance": {"open_tickets": 0.4, "tenure_days": 0.3, "last_nps": 0.2},
    } if full else None
    seg = pl.DataFrame({"segment_id": [0, 1], "segment_name": ["A", "B"], "size": [200, 200]})
    return ReportInputs(
        scores=_scores(full=full), as_of=AS_OF, run_id="test-run",
        segment_profiles=seg if full else None, churn=churn,
        valuation={"model": "bgnbd", "params": {"r": 0.5}} if full else None,
        warnings=[{"table": "transactions", "column": "amount", "rows": 12,
                   "message": "refunds (negative amounts)"}],
    )


def test_full_report_has_every_section_and_picture(tmp_path: Path) -> None:
    path = write_report(_inputs(full=True), tmp_path / "report.html")
    text = path.read_text()
    for part in ("Who our customers are", "What they are worth", "Who is about to leave",
                 "Data quality", "refunds (negative amounts)", "Churn rate per decile",
                 "Where retention money matters most", "Save first"):
        assert part in text, part
    assert text.count("data:image/png;base64,") >= 8
    assert "not run" not in text


def test_skipped_stages_are_said_not_hidden(tmp_path: Path) -> None:
    text = write_report(_inputs(full=False), tmp_path / "report.html").read_text()
    assert "Segmentation stage not run" in text
    assert "Valuation stage not run" in text
    assert "Churn stage not run" in text


@pytest.mark.skipif(not browser_available(), reason=SKIP_REASON)
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    path = write_report(_inputs(full=True), tmp_path / "report.html")
    page = check_page(path)
    assert page.images >= 8
    assert page.broken_images == []
    assert page.console_errors == []
    assert "crm-engine report" in page.title
    assert "Data quality" in page.headings
