"""Drivers: selection of the explained customers, sorting, signs, aliases, words, importance."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from churn import ChurnModel
from churn.drivers import (
    DRIVERS_DTYPE,
    REASONS_DTYPE,
    Quartiles,
    driver_reasons,
    global_importance,
    population_quartiles,
    reason_text,
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


def test_at_most_max_rows_are_explained_the_highest_value_at_risk_first() -> None:
    p = np.array([0.05, 0.5, 0.2, 0.1, 0.31, 0.4])
    var = p * np.array([1000.0, 1.0, 10.0, np.nan, 1.0, 2.0])  # 50, 0.5, 2, nan, 0.31, 0.8
    # the threshold selects 1, 4, 5 and the top value customer 0; two are kept: 0 and 5
    mask = select_for_drivers(p, 0.3, top_n=1, value_at_risk=var, max_rows=2)
    assert mask.tolist() == [True, False, False, False, False, True]
    # by probability without values; a customer with no value at risk only when room is left
    assert select_for_drivers(p, 0.3, 0, max_rows=1).tolist() == [0, 1, 0, 0, 0, 0]
    assert select_for_drivers(p, 0.0, 0, var, max_rows=5).tolist() == [1, 1, 1, 0, 1, 1]
    no_values = np.full(p.size, np.nan)  # selected without a value beat the unselected
    assert select_for_drivers(p, 0.3, 0, no_values, max_rows=2).sum() == 2
    assert not select_for_drivers(p, 0.3, 0, no_values, max_rows=2)[[0, 2, 3]].any()
    assert select_for_drivers(p, 0.3, 1, var, max_rows=10).sum() == 4  # under the cap: all
    assert not select_for_drivers(p, 0.0, 3, var, max_rows=0).any()


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


@pytest.mark.parametrize(("learner", "atol"), [("churn_model", 1e-6), ("logistic_model", 1e-9)])
def test_contributions_explain_raw_log_odds(
    learner: str,
    atol: float,
    request: pytest.FixtureRequest,
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
) -> None:
    # TreeSHAP for the trees, weight x (value - training mean) for the logistic regression:
    # either way the contributions add up to the raw log-odds
    churn_model: ChurnModel = request.getfixturevalue(learner)
    _, valid, _ = cuts
    sample = valid.head(300)
    contrib = churn_model.contributions(sample)
    assert contrib.shape == (300, churn_model.n_features_in_ + 1)
    raw = churn_model.predict_raw(sample)
    np.testing.assert_allclose(contrib.sum(axis=1), np.log(raw / (1 - raw)), atol=atol)
    imp = global_importance(contrib, churn_model.feature_names_in_)
    assert imp["mean_abs_contribution"].is_sorted(descending=True)
    # the truth's strongest drivers rank high; a pure-noise column does not lead
    top5 = imp["feature"].head(5).to_list()
    assert "spend_trend" in top5 and "plan_type" in top5
    assert imp["feature"][0] not in ("data_mb_3m", "gender", "occupation")


def test_of_an_alias_group_only_the_stronger_is_a_driver() -> None:
    names = ["T", "tenure_days", "plan_type", "data_mb_3m", "data_mb_12m"]
    contrib = np.array(
        [
            [0.2, 0.5, 0.1, 0.3, 0.4],  # tenure_days beats T; data_mb_12m beats data_mb_3m
            [0.6, 0.1, 0.0, -0.2, 0.05],  # T beats tenure_days; data_mb_12m alone is positive
        ]
    )
    rows = top_drivers(contrib, names, n_drivers=3).to_list()
    assert [d["feature"] for d in rows[0]] == ["tenure_days", "data_mb_12m", "plan_type"]
    assert [d["feature"] for d in rows[1]] == ["T", "data_mb_12m"]
    assert [d["contribution"] for d in rows[1]] == [0.6, 0.05]
    # without the rule both of a pair can be drivers
    plain = top_drivers(contrib, names, n_drivers=3, aliases=None).to_list()
    assert [d["feature"] for d in plain[0]] == ["tenure_days", "data_mb_12m", "data_mb_3m"]


def test_reasons_in_words() -> None:
    population = pl.DataFrame(
        {
            "coverage_5g_share_mean_3m": [0.12, 0.5, 0.8, 0.9, 0.95],
            "plan_type": ["prepaid", "postpaid", "prepaid", "postpaid", "business"],
            "tenure_days": [30, 400, 800, 1200, 3000],
            "complaints_90d": [2, 0, 0, 0, 0],
            "last_nps": [None, 7, 8, 9, 10],
            "has_purchase": [False, True, True, True, True],
            "revenue_365d": [1256.05, 100.0, 400.0, 500.0, 900.0],
        }
    )
    quartiles = population_quartiles(population, population.columns)
    assert "plan_type" not in quartiles
    assert quartiles["coverage_5g_share_mean_3m"] == Quartiles(0.5, 0.8, 0.9)
    drivers = pl.Series(
        [
            [
                {"feature": "coverage_5g_share_mean_3m", "contribution": 0.5},
                {"feature": "plan_type", "contribution": 0.3},
                {"feature": "complaints_90d", "contribution": 0.2},
            ],
            [
                {"feature": "tenure_days", "contribution": 0.4},
                {"feature": "revenue_365d", "contribution": 0.1},
            ],
            [],
            [
                {"feature": "last_nps", "contribution": 0.2},
                {"feature": "has_purchase", "contribution": 0.1},
            ],
            [{"feature": "plan_type", "contribution": 0.3}],
        ],
        dtype=DRIVERS_DTYPE,
    )
    # the model was trained on prepaid/postpaid (rare values pooled into 'other')
    categories = {"plan_type": ("other", "postpaid", "prepaid")}
    words = driver_reasons(drivers, population, quartiles, categories)
    assert words.dtype == REASONS_DTYPE
    assert words.to_list() == [
        [
            "5G coverage 12% (low), raises risk",
            "plan: prepaid, raises risk",
            "90-day complaints 2 (high), raises risk",
        ],
        ["tenure 400 days (typical), raises risk", "12-month spend 100.00 (low), raises risk"],
        [],
        ["last NPS 9 (typical), raises risk", "has purchased: yes, raises risk"],
        ["plan: other, raises risk"],
    ]
    assert reason_text("last_nps", None, 0.2) == "last NPS unknown, raises risk"
    assert reason_text("spend_trend", -0.5, -0.1) == "spend trend -0.50, lowers risk"
    with pytest.raises(ValueError, match="rows"):
        driver_reasons(drivers, population.head(2), quartiles)


def test_scored_reasons_say_the_drivers_in_words(
    churn_model: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    from churn import score_churn
    from crm_engine.config import ChurnConfig
    from crm_engine.contracts import scores_schema
    from crm_engine.feature_labels import plain_label

    _, valid, _ = cuts
    profile = valid.head(1_000).drop("churned_within_90d", "loyalty_class", "next_nps")
    cfg = ChurnConfig(drivers_min_probability=0.3, drivers_top_n=50, n_drivers=3)
    out = score_churn(profile, churn_model, cfg).frame
    assert out.schema["churn_reasons"] == scores_schema()["churn_reasons"] == REASONS_DTYPE
    assert out["churn_reasons"].list.len().to_list() == out["churn_drivers"].list.len().to_list()
    assert (out["churn_reasons"].list.len() > 0).sum() >= 50
    for drivers, reasons in out.select("churn_drivers", "churn_reasons").iter_rows():
        for d, text in zip(drivers, reasons, strict=True):
            assert text.startswith(plain_label(d["feature"])) and text.endswith(", raises risk")


def test_the_quartiles_of_a_large_population_come_from_a_hashed_sample(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Beyond ``QUARTILE_CUSTOMERS`` the reasons compare with the quartiles of a hashed sample of
    about that many customers, the same whether the population is one frame or parts (slices
    of 700, as the executors' files): close to the population's, without reading all of it."""
    from churn import drivers
    from crm_engine import parts
    from crm_engine.parts import FrameParts
    from features.sample import CustomerSample

    rng = np.random.default_rng(3)
    population = pl.DataFrame(
        {"customer_id": np.arange(20_000), "tenure_days": rng.gamma(2.0, 300.0, 20_000)}
    )
    whole = population_quartiles(population, ["tenure_days"])["tenure_days"]
    monkeypatch.setattr(drivers, "QUARTILE_CUSTOMERS", 4_000)
    got = population_quartiles(population, ["tenure_days", "customer_id"])["tenure_days"]
    sample = CustomerSample.bounded(population.height, 4_000)
    assert sample is not None
    kept = population.filter(sample.expr())["tenure_days"]
    assert 3_000 < kept.len() < 5_000
    assert got == Quartiles(*(kept.quantile(q) for q in (0.25, 0.5, 0.75)))  # type: ignore[misc]
    assert got != whole
    for mine, theirs in zip(
        (got.q1, got.median, got.q3), (whole.q1, whole.median, whole.q3), strict=True
    ):
        assert mine == pytest.approx(theirs, rel=0.05)
    monkeypatch.setattr(parts, "WRITE_ROWS", 700)
    assert population_quartiles(FrameParts(population), ["tenure_days"]) == {"tenure_days": got}
