"""The report's list of sections: each says in one place when the stage it shows did not run."""

from __future__ import annotations

import datetime as dt

import polars as pl

from crm_engine.report import ReportInputs
from crm_engine.report.page import SECTIONS


def _inputs() -> ReportInputs:
    scores = pl.DataFrame({"customer_id": [1, 2], "region": ["north", "south"]})
    return ReportInputs(scores=scores, as_of=dt.date(2025, 1, 1), run_id="r")


def test_sections_without_their_stage_say_which_stage_did_not_run() -> None:
    said = {s.id: s.render(_inputs()) for s in SECTIONS}
    assert said["lifecycle"].endswith("<p class='muted'>Valuation stage not run.</p>")
    assert said["value"].endswith("<p class='muted'>Valuation stage not run.</p>")
    assert said["churn"].endswith("<p class='muted'>Churn stage not run.</p>")
    assert "valuation or churn stage not run" in said["act"]
    assert "No loyalty scores in this run." in said["loyalty"]
    assert "No model was fitted in this run." in said["appendix"]
    for s in SECTIONS:
        assert said[s.id].startswith(f"<h2 id='{s.id}'>")


def test_a_section_renders_its_body_once_its_columns_have_values() -> None:
    lifecycle = next(s for s in SECTIONS if s.id == "lifecycle")
    inp = _inputs()
    assert not lifecycle.has_run(inp)
    inp.scores = inp.scores.with_columns(
        lifecycle_stage=pl.lit("new"), clv=pl.lit(1.0), value_at_risk=pl.lit(0.1)
    )
    assert lifecycle.has_run(inp)
    assert "Lifecycle funnel" in lifecycle.render(inp)
