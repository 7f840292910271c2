"""Drivers: selection of the explained customers, sorting, signs, importance."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from churn import ChurnModel
from churn.drivers import (
    DRIVERS_DTYPE,
    drivers_column,
    global_importance,
    select_for_drivers,
    top_drivers,
)


def test_select_by_threshold_or_top_value() -> None:
    p = np.array([0.05, 0.5, 0.2, 0.1, 0.31])
    clv = np.array([1000.0, 1.0, 10.0, np.nan, 1.0])
    var = p * clv
    mask = select_for_drivers(p, min_probability=0.3, top_n=1, value_at_risk=var)
    # 0.5 and 0.31 by threshold; customer 0 (value at risk 50) by value
    assert mask.tolist() == [True, True, False, False, True]
    by_prob = select_for_drivers(p, min_probability=0.9, top_n=2)
    assert by_prob.tolist() == [False, True, False, False, True]
    assert not select_for_drivers(p, min_probability=1.0, top_n=0).any()


def test_top_drivers_sorted_positive_only() -> None:
    contrib = np.array(
        [
            [0.1, -0.5, 0.3, 0.2, -1.0],  # last column = bias
            [-0.1, -0.2, -0.3, -0.4, 2.0],
            [0.5, 0.4, 0.0, 0.6, 0.0],
        ]
    )
    s = top_drivers(contrib, ["a", "b", "c", "d"], n_drivers=3)
    assert s.dtype == DRIVERS_DTYPE
    rows = s.to_list()
    assert [d["feature"] for d in rows[0]] == ["c", "d", "a"]
    assert [d["contribution"] for d in rows[0]] == [0.3, 0.2, 0.1]
    assert rows[1] == []
    assert [d["feature"] for d in rows[2]] == ["d", "a", "b"]


def test_drivers_column_empty_outside_mask() -> None:
    contrib = np.array([[0.2, 0.1, 0.0], [0.0, 0.3, 0.0]])
    reasons = top_drivers(contrib, ["x", "y"], 2)
    col = drivers_column(4, np.array([False, True, False, True]), reasons)
    assert col.dtype == DRIVERS_DTYPE and col.len() == 4
    out = col.to_list()
    assert out[0] == [] and out[2] == []
    assert [d["feature"] for d in out[1]] == ["x", "y"]
    assert [d["feature"] for d in out[3]] == ["y"]
    with pytest.raises(ValueError, match="does not match"):
        drivers_column(4, np.array([True, True, False, True]), reasons)
    # reasons computed in batches and concatenated land on the same rows
    batched = pl.concat(
        [top_drivers(contrib[:1], ["x", "y"], 2), top_drivers(contrib[1:], ["x", "y"], 2)]
    )
    assert drivers_column(4, np.array([False, True, False, True]), batched).equals(col)
    assert drivers_column(3, np.zeros(3, dtype=bool), reasons.head(0)).to_list() == [[], [], []]


def test_contributions_explain_raw_log_odds(
    churn_model: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    _, valid, _ = cuts
    sample = valid.head(200)
    contrib = churn_model.contributions(sample)
    raw = churn_model.predict_raw(sample)
    np.testing.assert_allclose(contrib.sum(axis=1), np.log(raw / (1 - raw)), atol=1e-6)
    imp = global_importance(contrib, churn_model.feature_names_in_)
    assert imp["mean_abs_contribution"].is_sorted(descending=True)
    # the truth's strongest drivers rank high; a pure-noise column does not lead
    top5 = imp["feature"].head(5).to_list()
    assert "spend_trend" in top5 and "plan_type" in top5
    assert imp["feature"][0] not in ("data_mb_3m", "gender", "occupation")
