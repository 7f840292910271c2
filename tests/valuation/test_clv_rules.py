"""CLV discounting by hand, tiers, lifecycle rules and profit contribution on hand-built frames."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_series_equal

from crm_engine.config import LifecycleRules
from valuation import (
    assign_tiers,
    discounted_clv,
    lifecycle_stage_expr,
    month_ends,
    monthly_discount_rate,
    profit_contribution_expr,
    tier_cut_points,
    with_lifecycle_inputs,
)


def test_monthly_rate_compounds_to_the_annual_rate() -> None:
    d = monthly_discount_rate(0.10)
    assert (1 + d) ** 12 == pytest.approx(1.10, rel=1e-12)
    assert monthly_discount_rate(0.0) == 0.0


def test_month_ends_cap_the_last_month_at_the_horizon() -> None:
    np.testing.assert_array_equal(month_ends(365), [*range(30, 361, 30), 365])
    np.testing.assert_array_equal(month_ends(60), [30, 60])
    np.testing.assert_array_equal(month_ends(45), [30, 45])
    assert len(month_ends(365)) == 13


def test_discounted_clv_hand_computed() -> None:
    # Customer A buys 1, 2, 4 purchases by the end of months 1..3; B nothing then 3 at once.
    cum = np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 3.0]])
    value = np.array([10.0, 20.0])
    d = 0.01
    # A: (1/1.01 + 1/1.01**2 + 2/1.01**3) * 10 * 0.5
    a = (1 / 1.01 + 1 / 1.01**2 + 2 / 1.01**3) * 10 * 0.5
    b = (3 / 1.01**3) * 20 * 0.5
    np.testing.assert_allclose(discounted_clv(cum, value, 0.5, d), [a, b], rtol=1e-12)
    # No discounting: CLV is purchases x value x margin.
    np.testing.assert_allclose(discounted_clv(cum, value, 0.5, 0.0), [20.0, 30.0])


def test_discounted_clv_is_never_driven_negative_by_rounding() -> None:
    cum = np.array([[1.0, 1.0 - 1e-15, 2.0]])
    assert discounted_clv(cum, np.array([5.0]), 1.0, 0.0)[0] == pytest.approx(10.0)


def test_tiers_by_quantiles_and_ties_stay_low() -> None:
    clv = np.arange(1, 101, dtype=float)  # 1..100
    cuts = tier_cut_points(clv, [0.5, 0.8, 0.95])
    assert cuts == pytest.approx([50.5, 80.2, 95.05])
    tiers = assign_tiers(clv, cuts)
    counts = dict(zip(*np.unique(tiers.to_numpy(), return_counts=True), strict=True))
    assert counts == {"bronze": 50, "silver": 30, "gold": 15, "platinum": 5}
    assert tiers[0] == "bronze" and tiers[99] == "platinum"
    zeros = np.zeros(10)
    assert set(assign_tiers(zeros, tier_cut_points(zeros, [0.5, 0.8, 0.95]))) == {"bronze"}
    with pytest.raises(ValueError, match="increasing"):
        tier_cut_points(clv, [0.8, 0.5, 0.9])


def test_lifecycle_rules_in_order() -> None:
    rules = LifecycleRules(
        new_tenure_days=90, dormant_recency_days=90, dormant_p_alive=0.3, at_risk_p_alive=0.7
    )
    frame = pl.DataFrame(
        {
            "tenure_days": [30, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400],
            "recency_days": [200, 200, 50, 200, 90, 89, None, 10, 200, 90, 89, None],
            "frequency": [3, 3, 3, 3, 3, 3, None, 3, 0, 0, 0, None],
            "p_alive": [0.1, 0.1, 0.1, 0.5, 0.29, 0.29, 0.1, 0.95, 0.95, 0.95, 0.95, 0.95],
        }
    )
    got = frame.pipe(with_lifecycle_inputs).select(lifecycle_stage_expr(rules)).to_series()
    want = pl.Series(
        "lifecycle_stage",
        # new wins; dormant needs both; recency boundary is inclusive; no purchase counts
        # tenure as recency; without a repeat purchase the silence alone makes at_risk,
        # whatever P(alive) says.
        [
            *("new", "dormant", "at_risk", "at_risk", "dormant", "at_risk", "dormant", "active"),
            *("at_risk", "at_risk", "active", "at_risk"),
        ],
    )
    assert_series_equal(got, want)


def test_postpaid_customers_by_their_own_signals() -> None:
    """A postpaid customer's term end, falling bill or unpaid silence says at_risk, whatever
    P(alive) says (never dormant: they are still billed); prepaid keep the purchase rules."""
    rules = LifecycleRules(at_risk_contract_days=90, at_risk_bill_trend=-0.2)
    frame = pl.DataFrame(
        {
            "tenure_days": [30, 400, 400, 400, 400, 400, 400, 400, 400, 400],
            "recency_days": [5, 5, 5, 5, 5, 5, 120, 5, 120, 120],
            "frequency": [1, 12, 12, 12, 12, 12, 12, 12, 12, 12],
            "p_alive": [0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.1, 0.1, 0.1],
            "plan_type": [
                *("postpaid",) * 8,
                "prepaid",
                None,
            ],
            "contract_days_left": [10, 10, 90, 91, -1, None, None, None, 10, 10],
            "spend_trend": [-0.5, 0.0, 0.0, 0.0, -0.2, -0.19, 0.0, 0.0, -0.9, 0.0],
        }
    )
    got = frame.select(lifecycle_stage_expr(rules)).to_series().to_list()
    # new wins; the term's end within 90 days (inclusive, not after it ended); the bill
    # trend boundary; an unpaid silence; a low P(alive) alone is no postpaid signal; the
    # prepaid and the plan-less rows by their purchases (contract and bill ignored)
    assert got == [
        *("new", "at_risk", "at_risk", "active", "at_risk", "active", "at_risk", "active"),
        *("dormant", "dormant"),
    ]


def test_profit_contribution_with_and_without_interaction_columns() -> None:
    full = pl.DataFrame(
        {
            "revenue_365d": [100.0, None, 50.0],
            "complaints_365d": [1, 0, None],
            "inquiries_365d": [2, 1, 0],
        }
    )
    got = full.select(profit_contribution_expr(full.columns, 0.3, 2.0)).to_series()
    np.testing.assert_allclose(got.to_numpy(), [30 - 6, -2, 15])
    bare = full.select("revenue_365d")
    got = bare.select(profit_contribution_expr(bare.columns, 0.3, 2.0)).to_series()
    np.testing.assert_allclose(got.to_numpy(), [30, 0, 15])
