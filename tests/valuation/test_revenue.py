"""The revenue holdout: each value model's forecast of a year's revenue against the real one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from crm_engine.config import ValuationConfig
from crm_engine.io import load_tables
from features import build_profile
from tests.valuation.profiles import point_in_time
from valuation import run_valuation
from valuation.base import ValuationError
from valuation.revenue import RevenueHoldout, revenue_holdout

AS_OF = dt.date(2025, 1, 1)
CUT = dt.date(2024, 1, 2)  # as_of - 365 days


@pytest.fixture(scope="module")
def tables(generated_operator: Path) -> dict[str, pl.LazyFrame]:
    return load_tables(generated_operator)


@pytest.fixture(scope="module")
def holdout(tables: dict[str, pl.LazyFrame]) -> RevenueHoldout:
    return revenue_holdout(point_in_time(tables, AS_OF), ValuationConfig(), "bgnbd")


def test_every_plan_and_model_against_the_real_revenue(
    holdout: RevenueHoldout, tables: dict[str, pl.LazyFrame]
) -> None:
    assert holdout.cut == CUT and holdout.days == 365
    got = {(r["plan_type"], r["model"]): r for r in holdout.rows}
    assert set(got) == {
        ("prepaid", "bgnbd"),
        ("postpaid", "bgnbd"),
        ("postpaid", "sbg"),
        ("postpaid", "hazard"),
    }
    # the real revenue, computed here from the tables: customers there at the cut, what they
    # paid in [cut, as_of)
    there = build_profile(tables, CUT).select("customer_id", "plan_type").collect()
    paid = (
        tables["transactions"]
        .filter((pl.col("ts").dt.date() >= CUT) & (pl.col("ts").dt.date() < AS_OF))
        .group_by("customer_id")
        .agg(pl.col("amount").sum())
        .collect()
    )
    real = there.join(paid, on="customer_id", how="left").with_columns(
        pl.col("amount").fill_null(0.0)
    )
    for (plan, _), row in got.items():
        part = real.filter(pl.col("plan_type") == plan)
        assert row["customers"] == part.height > 300
        assert row["mean_actual"] == pytest.approx(part["amount"].mean(), rel=1e-9)
        assert row["mae"] > 0 and row["mean_predicted"] > 0
    # a forecast of the right size: within a third of the real mean revenue
    for row in got.values():
        assert abs(row["mean_predicted"] / row["mean_actual"] - 1) < 0.35, row
    assert holdout.postpaid_choice() in {"bgnbd", "sbg", "hazard"}
    assert holdout.postpaid_choice() == min(
        ("bgnbd", "sbg", "hazard"), key=lambda m: got["postpaid", m]["mae"]
    )


def test_sees_nothing_from_as_of_on(
    holdout: RevenueHoldout, tables: dict[str, pl.LazyFrame]
) -> None:
    """Transactions on or after as_of doubled, churn dates after it moved: the same result."""
    later = dict(tables)
    tx = tables["transactions"]
    later["transactions"] = pl.concat(
        [
            tx,
            tx.filter(pl.col("ts").dt.date() >= AS_OF - dt.timedelta(days=30)).with_columns(
                pl.col("ts") + pl.duration(days=40)
            ),
        ]
    )
    later["customers"] = tables["customers"].with_columns(
        pl.when(pl.col("churn_date") >= pl.lit(AS_OF))
        .then(pl.lit(AS_OF) + pl.duration(days=3))
        .otherwise(pl.col("churn_date"))
        .alias("churn_date")
    )
    again = revenue_holdout(point_in_time(later, AS_OF), ValuationConfig(), "bgnbd")
    assert again.to_dict() == holdout.to_dict()


def test_too_little_history_is_a_clear_error(tables: dict[str, pl.LazyFrame]) -> None:
    with pytest.raises(ValuationError, match="needs 365 days of history before as_of"):
        revenue_holdout(point_in_time(tables, dt.date(2023, 9, 1)), ValuationConfig(), "bgnbd")


def _holdout(contract_mae: float | None) -> RevenueHoldout:
    rows = [{"plan_type": "postpaid", "model": "bgnbd", "mae": 50.0}]
    if contract_mae is not None:
        rows.append({"plan_type": "postpaid", "model": "sbg", "mae": contract_mae})
    return RevenueHoldout(CUT, 365, "bgnbd", rows, {})


def test_auto_keeps_the_lower_postpaid_error() -> None:
    assert _holdout(40.0).postpaid_choice() == "sbg"
    assert _holdout(60.0).postpaid_choice() == "bgnbd"
    assert _holdout(None).postpaid_choice() == "bgnbd"
    # with both contract models measured, the lowest of the three errors
    both = _holdout(40.0)
    both.rows.append({"plan_type": "postpaid", "model": "hazard", "mae": 35.0})
    assert both.postpaid_choice() == "hazard"
    both.rows[-1]["mae"] = 45.0
    assert both.postpaid_choice() == "sbg"
    both.rows[-1]["mae"] = 40.0  # a tie goes to the first contract model (sbg)
    assert both.postpaid_choice() == "sbg"


def test_run_valuation_values_postpaid_as_the_holdout_says(
    tables: dict[str, pl.LazyFrame], holdout: RevenueHoldout
) -> None:
    run = run_valuation(point_in_time(tables, AS_OF), ValuationConfig(postpaid_model="auto"))
    report = run.report
    assert report.revenue_holdout is not None
    assert report.revenue_holdout.to_dict() == holdout.to_dict()
    choice = holdout.postpaid_choice()
    contract = choice in {"sbg", "hazard"}
    assert (run.models.retention is not None) == contract
    # (a postpaid customer who paid no bill yet is valued by the purchase model either way)
    postpaid_models = set(
        run.values.join(
            build_profile(tables, AS_OF)
            .select("customer_id", "plan_type", "has_purchase")
            .collect(),
            on="customer_id",
        )
        .filter((pl.col("plan_type") == "postpaid") & pl.col("has_purchase"))
        .get_column("value_model")
    )
    assert (postpaid_models == {choice}) == contract
    assert any(n.startswith(f"postpaid customers valued by {choice}") for n in report.notes)
    # no holdout, no revenue holdout: auto keeps the purchase model and says why
    run = run_valuation(
        point_in_time(tables, AS_OF), ValuationConfig(postpaid_model="auto", holdout_days=0)
    )
    assert run.report.revenue_holdout is None and run.models.retention is None
