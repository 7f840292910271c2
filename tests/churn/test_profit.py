"""Retention economics: expected profit per customer, the contact set, the profit curve, EMPC."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from churn import profit_band
from churn.profit import empc, expected_profit, planned_curve, profit_curve
from crm_engine.config import RetentionConfig

TERMS = RetentionConfig(offer_cost=10.0, contact_cost=1.0, accept_rate=0.3)


def test_expected_profit_is_verbrakens_offer_model() -> None:
    # a sure churner worth 200: 0.3 x 190 - 1; a sure stayer: the offer is paid for nothing
    gain = expected_profit(np.array([1.0, 0.0, 0.5]), np.array([200.0, 200.0, np.nan]), TERMS)
    np.testing.assert_allclose(gain[:2], [0.3 * 190 - 1, -10 - 1])
    assert np.isnan(gain[2])


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 5_000)), min_size=1, max_size=60))
def test_the_positive_profits_are_the_best_contact_set(rows: list[tuple[float, float]]) -> None:
    # ranked by their own expected profit, the cumulative total peaks exactly where the
    # profits turn negative: no other number of contacts earns more
    p, clv = (np.array(c) for c in zip(*rows, strict=True))
    gain = expected_profit(p, clv, TERMS)
    curve = planned_curve(gain, points=7)
    best = float(curve["expected_profit"].max())
    assert best == pytest.approx(float(gain[gain > 0].sum()), abs=1e-9)
    totals = np.concatenate([[0.0], np.cumsum(np.sort(gain)[::-1])])
    assert best == pytest.approx(totals.max(), abs=1e-9)
    band = profit_band(p, gain, 0.5).to_numpy()
    assert ((band == "high") == (gain > 0)).all()
    assert set(band[gain <= 0]) <= {"medium", "low"}


def test_empc_of_a_perfect_ranking_is_known() -> None:
    # 100 churners of 1,000 ranked first: contacting exactly them pays for any acceptance
    # rate above 1/190, so EMPC = (E[gamma] x 190 - 1) x 100 / 1000 and the share is 10%.
    y = np.zeros(1_000)
    y[:100] = 1
    out = empc(y, y.copy(), 200.0, TERMS)
    assert out.share == pytest.approx(0.1, abs=1e-3)
    assert out.empc == pytest.approx((0.3 * 190 - 1) * 0.1, rel=0.01)
    assert out.share_at_mean == pytest.approx(0.1)
    assert out.profit_at_mean == pytest.approx((0.3 * 190 - 1) * 0.1)


def test_empc_of_a_random_ranking_is_near_nothing() -> None:
    # contacting at random earns 0.1 x gamma x 190 - 0.9 x 10 - 1 < 0 unless gamma > 0.53:
    # only the Beta(6, 14) tail pays, so EMPC is a small fraction of the perfect model's
    rng = np.random.default_rng(0)
    y = (rng.random(20_000) < 0.1).astype(float)
    p = rng.random(y.size)
    random, perfect = empc(y, p, 200.0, TERMS), empc(y, y + p * 1e-3, 200.0, TERMS)
    assert random.empc < 0.05 * perfect.empc
    assert random.share_at_mean < 0.01  # at the mean rate a lucky first few at most
    curve = profit_curve(y, p, 200.0, TERMS, points=11)
    assert curve["share"].to_list()[0] == 0.0 and curve["profit_per_customer"][0] == 0.0
    whole = (0.3 * (y * 190).sum() - ((1 - y) * 10 + 1).sum()) / y.size
    assert curve["profit_per_customer"][-1] == pytest.approx(whole)


def test_empc_needs_outcomes_and_a_value() -> None:
    with pytest.raises(ValueError, match="as many outcomes"):
        empc(np.ones(3), np.ones(2), 100.0, TERMS)
    with pytest.raises(ValueError, match="finite"):
        empc(np.ones(3), np.ones(3), float("nan"), TERMS)
