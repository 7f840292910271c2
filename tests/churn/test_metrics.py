"""Metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from churn.metrics import (
    binary_metrics,
    lift_at,
    lift_curve,
    multiclass_metrics,
    reliability_curve,
)


def test_lift_and_capture_top_decile() -> None:
    # 100 customers, 10 churners; the model ranks 5 of them in its top 10
    y = np.zeros(100, dtype=int)
    y[:10] = 1
    p = np.linspace(1, 0, 100)
    p[5:10] = 0.0  # five churners pushed to the bottom
    lift, capture = lift_at(y, p, 0.1)
    assert capture == pytest.approx(0.5)
    assert lift == pytest.approx(0.5 / 0.1)


def test_binary_metrics_perfect_and_constant() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    perfect = binary_metrics(y, y.astype(float))
    assert perfect["roc_auc"] == 1.0
    assert perfect["brier"] == 0.0
    const = binary_metrics(y, np.full(6, 0.5))
    assert const["roc_auc"] == 0.5
    assert const["brier"] == pytest.approx(0.25)
    assert const["log_loss"] == pytest.approx(np.log(2))


def test_reliability_curve_bins_quantiles() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 10_000)
    y = rng.uniform(0, 1, 10_000) < p
    curve = reliability_curve(y, p, n_bins=10)
    assert curve.height == 10
    assert curve["count"].to_list() == [1000] * 10
    np.testing.assert_allclose(curve["observed_rate"], curve["mean_predicted"], atol=0.05)


def test_lift_curve_ends_at_full_capture() -> None:
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    curve = lift_curve(y, np.arange(10)[::-1] / 10, n_bins=10)
    assert curve["capture"][-1] == pytest.approx(1.0)
    assert curve["lift"][-1] == pytest.approx(1.0)
    assert curve["lift"][0] == pytest.approx(1 / 0.2)


def test_multiclass_metrics() -> None:
    classes = ("detractor", "passive", "promoter")
    y = np.array(["promoter", "passive", "detractor", "promoter"])
    proba = np.array([[0.1, 0.2, 0.7], [0.2, 0.6, 0.2], [0.8, 0.1, 0.1], [0.3, 0.3, 0.4]])
    m = multiclass_metrics(y, proba, classes)
    assert m["accuracy"] == 1.0
    assert m["auc_promoter"] == 1.0
    expected = -np.mean(np.log([0.7, 0.6, 0.8, 0.4]))
    assert m["log_loss"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="not in classes"):
        multiclass_metrics(np.array(["fan"] * 4), proba, classes)
