"""The values stage on a profile-like frame: schema, rules, no-purchase customers, errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import features
from crm_engine.config import ValuationConfig
from valuation import (
    VALUES_SCHEMA,
    BetaGeoModel,
    FrequencyZeroSplit,
    GammaGammaModel,
    ModifiedBetaGeoModel,
    ValuationError,
    ValuationModels,
    btyd_frame,
    btyd_statistics,
    fit_models,
    value_customers,
)
from valuation.stage import everyone_statistics, merge_statistics


def test_values_frame_contract_and_report(profile: pl.DataFrame) -> None:
    cfg = ValuationConfig()
    before = profile.clone()
    values, report = value_customers(profile, cfg)
    assert values.schema == VALUES_SCHEMA
    assert values.height == profile.height
    assert values["customer_id"].to_list() == profile["customer_id"].to_list()
    assert profile.equals(before)  # the input is not mutated
    for c in ("p_alive", "expected_purchases", "expected_avg_value", "clv"):
        col = values[c]
        assert col.null_count() == 0 and col.is_finite().all() and (col >= 0).all(), c
    assert (values["p_alive"] <= 1).all()
    assert set(values["value_tier"]) <= {"bronze", "silver", "gold", "platinum"}
    # Report: JSON-ready, parameters per day, and no customer rows.
    text = json.dumps(report.to_dict())
    assert report.model == "bgnbd" and report.time_unit == "days"
    assert set(report.params) == {"r", "alpha", "a", "b"}
    assert report.params["r"] == pytest.approx(0.8, rel=0.2)
    assert report.spend.params["p"] == pytest.approx(6.0, rel=0.3)
    assert abs(report.spend.frequency_monetary_corr) < 0.1
    assert report.n_customers_fitted == 3_000
    assert report.n_customers_without_purchase == 50
    assert sum(report.tier_counts.values()) == values.height
    assert sum(report.lifecycle_counts.values()) == values.height
    assert "customer_id" not in text


def test_no_purchase_customers_get_population_spend(profile: pl.DataFrame) -> None:
    values, report = value_customers(profile, ValuationConfig())
    # the RFM facts are the profile's (features.rfm_facts), joined beside the values
    facts = profile.select("customer_id", *features.rfm_facts())
    never = values.join(facts, on="customer_id").join(
        profile.filter(~pl.col("has_purchase")), on="customer_id", how="semi"
    )
    assert never.height == 50
    assert never["recency_days"].null_count() == 50
    assert never["monetary_avg"].null_count() == 50
    np.testing.assert_allclose(never["expected_avg_value"], report.spend.population_mean)
    # No repeat purchase: valued by MBG/NBD (BG/NBD would say alive for sure). Silent since
    # signup 100 days ago with nothing to compare the silence with: at risk, not active.
    assert (never["p_alive"] < 1.0).all()
    assert set(never["lifecycle_stage"]) == {"at_risk"}


def test_values_follow_the_rules(profile: pl.DataFrame) -> None:
    cfg = ValuationConfig()
    values, report = value_customers(profile, cfg)
    facts = profile.select("customer_id", *features.rfm_facts())
    joined = values.join(facts, on="customer_id").join(profile, on="customer_id", suffix="_p")
    want_profit = joined["revenue_365d"] * cfg.margin - cfg.cost_per_interaction * (
        joined["complaints_365d"] + joined["inquiries_365d"]
    )
    np.testing.assert_allclose(joined["profit_contribution"], want_profit)
    new = joined.filter(pl.col("tenure_days") < cfg.lifecycle.new_tenure_days)
    assert (new["lifecycle_stage"] == "new").all()
    cuts = report.tier_cut_points
    plat = values.filter(pl.col("value_tier") == "platinum")
    assert (plat["clv"] > cuts["platinum"]).all()
    # A higher P(alive) and frequency (same T and recency) never lowers expected purchases.
    assert values["clv"].sum() == pytest.approx(report.total_clv)
    buyers = joined.filter(pl.col("has_purchase"))
    np.testing.assert_array_equal(
        # T runs to the last observed day (as_of - 1): as_of - last purchase = T - recency + 1.
        buyers["recency_days"],
        (buyers["T"] - buyers["recency"] + 1).cast(pl.Int64),
    )


def test_prefitted_models_score_without_refitting(profile: pl.DataFrame) -> None:
    cfg = ValuationConfig()
    models = fit_models(btyd_statistics(profile), cfg)
    a, _ = value_customers(profile, cfg, models)
    b, _ = value_customers(profile, cfg)
    assert a.equals(b)
    # Scoring a subset with the fitted models gives the same rows.
    part, _ = value_customers(profile.tail(100), cfg, models)
    assert_frame_equal(part.drop("value_tier"), a.tail(100).drop("value_tier"), rel_tol=1e-9)


def test_the_fits_need_only_the_sums_of_their_statistics(profile: pl.DataFrame) -> None:
    """Each slice's sufficient statistics (what the Spark executors send the driver) add up
    to the whole profile's, in any order; a fit on them is the fit on the customers: the
    same parameters as the models fitted on one row a customer."""
    cfg = ValuationConfig()
    whole = btyd_statistics(profile)
    assert whole.get_column("customers").sum() == profile.height
    assert whole.height < profile.height  # customers share their rows
    parts = pl.concat(btyd_statistics(profile.slice(i, 97)) for i in range(0, profile.height, 97))
    summed = merge_statistics(parts.reverse())
    key = list(whole.columns[:-1])
    assert_frame_equal(summed.sort(key), whole.sort(key), check_row_order=True)
    assert_frame_equal(everyone_statistics(profile.lazy()).sort(key), whole.sort(key))
    models = fit_models(summed, cfg)
    rows = btyd_frame(profile).filter("fit")  # one row a customer
    purchase = FrequencyZeroSplit(BetaGeoModel(), ModifiedBetaGeoModel()).fit(rows)
    for name, value in purchase.params_.items():
        assert models.purchase.params_[name] == pytest.approx(value, rel=1e-9), name
    spend = GammaGammaModel().fit(rows)
    for name, value in spend.params_.items():
        assert models.spend.params_[name] == pytest.approx(value, rel=1e-9), name
    assert models.purchase.n_customers_ == rows.height


def test_clv_grows_with_horizon_and_shrinks_with_discounting(profile: pl.DataFrame) -> None:
    models = fit_models(btyd_statistics(profile), ValuationConfig())
    short, _ = value_customers(profile, ValuationConfig(horizon_days=90), models)
    long_, _ = value_customers(profile, ValuationConfig(horizon_days=365), models)
    cheap, _ = value_customers(
        profile, ValuationConfig(horizon_days=365, annual_discount_rate=0.5), models
    )
    assert (long_["clv"] >= short["clv"] - 1e-12).all()
    assert (cheap["clv"] <= long_["clv"] + 1e-12).all()
    assert cheap["clv"].sum() < long_["clv"].sum()


def test_model_name_override_and_auto_fallback(profile: pl.DataFrame) -> None:
    _, report = value_customers(profile, ValuationConfig(), "mbgnbd")
    assert report.model == "mbgnbd"
    with pytest.warns(UserWarning, match="without a holdout"):
        _, report = value_customers(profile, ValuationConfig(model="auto"))
    assert report.model in {"bgnbd", "mbgnbd", "pareto"}


def test_missing_columns_and_too_few_buyers_are_clear_errors(profile: pl.DataFrame) -> None:
    with pytest.raises(ValuationError, match=r"missing column\(s\) \['revenue_365d'\]"):
        value_customers(profile.drop("revenue_365d"), ValuationConfig())
    with pytest.raises(ValuationError, match="only 5 customer"):
        value_customers(profile.head(5), ValuationConfig())


def test_stage_needs_no_warnings_filters(profile: pl.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models = ValuationModels(
            BetaGeoModel().fit(profile.filter("has_purchase")),
            GammaGammaModel().fit(profile),
        )
        value_customers(profile, ValuationConfig(), models)


def _with_facts(values: pl.DataFrame, profile: pl.DataFrame) -> pl.DataFrame:
    facts = profile.select("customer_id", "frequency", "tenure_days", *features.rfm_facts())
    return values.join(facts, on="customer_id", maintain_order="left").with_columns(
        silent_days=pl.coalesce("recency_days", "tenure_days")
    )


def test_frequency0_customers_are_valued_by_a_model_that_lets_them_die(
    profile: pl.DataFrame,
) -> None:
    cfg = ValuationConfig()
    values, report = value_customers(profile, cfg)
    joined = _with_facts(values, profile)
    zero = pl.col("frequency") == 0
    silent = joined.filter(zero & (pl.col("silent_days") >= cfg.lifecycle.dormant_recency_days))
    assert silent.height > 300  # BG/NBD draws: plenty of one-time buyers, long silent
    assert (silent["p_alive"] < 1.0).all()
    assert "active" not in set(silent["lifecycle_stage"])
    # ... and the longer the silence, the lower P(alive) (same frequency 0).
    assert silent.select(pl.corr("silent_days", "p_alive", method="spearman")).item() < -0.9
    # Repeat buyers keep BG/NBD's numbers; frequency 0 takes every number from MBG/NBD.
    X = btyd_frame(profile)
    fit_rows = X.filter("fit")
    bg, mbg = BetaGeoModel().fit(fit_rows), ModifiedBetaGeoModel().fit(fit_rows)
    f0 = (X["frequency"] == 0).to_numpy()
    p_alive = values["p_alive"].to_numpy()
    np.testing.assert_allclose(p_alive[~f0], bg.p_alive(X)[~f0], rtol=1e-12)
    np.testing.assert_allclose(p_alive[f0], mbg.p_alive(X)[f0], rtol=1e-12)
    expected = values["expected_purchases"].to_numpy()
    np.testing.assert_allclose(expected[f0], mbg.expected_purchases(X, 365)[f0], rtol=1e-12)
    assert report.model == "bgnbd" and report.params == pytest.approx(bg.params_)
    assert report.frequency0_model == "mbgnbd"
    assert report.frequency0_params == pytest.approx(mbg.params_)
    assert report.n_customers_frequency0 == int(f0.sum())
    assert any("valued (P(alive), expected purchases, CLV) by mbgnbd" in n for n in report.notes)
    # A model that can express it values everyone itself.
    _, own = value_customers(profile, cfg, "pareto")
    assert own.frequency0_model == "pareto" and not any("frequency 0" in n for n in own.notes)


def test_a_plain_bgnbd_model_still_keeps_long_silent_one_time_buyers_out_of_active(
    profile: pl.DataFrame,
) -> None:
    # A BG/NBD model fitted without its frequency-0 partner (a model registered before it).
    cfg = ValuationConfig()
    fit_rows = btyd_frame(profile).filter("fit")
    models = ValuationModels(BetaGeoModel().fit(fit_rows), GammaGammaModel().fit(profile))
    values, report = value_customers(profile, cfg, models)
    joined = _with_facts(values, profile)
    silent = joined.filter(
        (pl.col("frequency") == 0) & (pl.col("silent_days") >= cfg.lifecycle.dormant_recency_days)
    )
    assert (silent["p_alive"] == 1.0).all()  # what BG/NBD says ...
    assert set(silent["lifecycle_stage"]) == {"at_risk"}  # ... and what lifecycle makes of it
    assert report.frequency0_model == "bgnbd"
    assert any("refit" in n for n in report.notes)


def test_frequency_zero_split_is_a_plain_estimator(profile: pl.DataFrame) -> None:
    import pickle

    from sklearn.base import clone

    X = btyd_frame(profile).filter("fit")
    split = FrequencyZeroSplit(BetaGeoModel(), ModifiedBetaGeoModel()).fit(X)
    assert split.model_name == "bgnbd" and split.penalizer == 0.0
    again = pickle.loads(pickle.dumps(split))
    np.testing.assert_array_equal(again.p_alive(X), split.p_alive(X))
    assert set(clone(split).get_params(deep=False)) == {"repeat", "frequency0"}
    with pytest.raises(ValueError, match="P\\(alive\\) = 1 without a repeat purchase"):
        FrequencyZeroSplit(BetaGeoModel(), BetaGeoModel()).fit(X)
