"""score_customers: contract dtypes, risk bands, drivers only for the selected customers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import churn.scoring
from churn import (
    ChurnModel,
    LoyaltyModel,
    risk_band,
    score_churn,
    score_customers,
    train_churn,
    train_loyalty,
)
from churn.drivers import DRIVERS_DTYPE, select_for_drivers, top_drivers
from crm_engine.config import ChurnConfig, LoyaltyConfig, RetentionConfig
from crm_engine.contracts import scores_schema


def test_risk_bands() -> None:
    band = risk_band(np.array([0.0, 0.0999, 0.1, 0.29, 0.3, 0.99]), [0.1, 0.3])
    assert band.to_list() == ["low", "low", "medium", "medium", "high", "high"]
    with pytest.raises(ValueError, match="increasing"):
        risk_band(np.array([0.5]), [0.3, 0.1])


def test_score_customers_contract_and_drivers(
    churn_model: ChurnModel,
    loyalty_model: LoyaltyModel,
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
) -> None:
    _, valid, _ = cuts
    profile = valid.head(5_000).drop("churned_within_90d", "loyalty_class", "next_nps")
    cfg = ChurnConfig(drivers_min_probability=0.5, drivers_top_n=100, n_drivers=3)
    out = score_customers(profile, churn_model, loyalty_model, cfg, clv=None)
    contract = scores_schema()
    assert out.height == profile.height
    for c in out.columns:
        assert out.schema[c] == contract[c], c
    assert out["customer_id"].to_list() == profile["customer_id"].to_list()
    p = out["churn_probability"].to_numpy()
    np.testing.assert_array_equal(p, churn_model.predict_churn(profile))
    assert out["value_at_risk"].null_count() == out.height
    n_reasons = out["churn_drivers"].list.len().to_numpy()
    top100 = np.argsort(-p, kind="stable")[:100]
    selected = (p >= 0.5) | np.isin(np.arange(p.size), top100)
    assert (n_reasons[~selected] == 0).all()
    assert (n_reasons[selected] > 0).mean() > 0.95
    assert n_reasons.max() <= 3
    for reasons in out.filter(pl.Series(selected))["churn_drivers"].head(200).to_list():
        values = [r["contribution"] for r in reasons]
        assert values == sorted(values, reverse=True) and all(v > 0 for v in values)
    bands = out["churn_risk_band"].to_numpy()
    low, high = cfg.risk_thresholds
    assert (bands[p >= high] == "high").all() and (bands[p < low] == "low").all()
    assert (bands[(p >= low) & (p < high)] == "medium").all()
    assert "lost" not in set(bands)  # without valuation's lifecycle nobody is lost
    # loyalty columns
    proba = loyalty_model.predict_proba(profile)
    np.testing.assert_array_equal(out["loyalty_score"].to_numpy(), proba[:, 2])
    assert set(out["loyalty_class"].unique()) <= {"promoter", "passive", "detractor"}


def test_value_at_risk_ranks_drivers(
    churn_model: ChurnModel, cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray]
) -> None:
    _, valid, _ = cuts
    profile = valid.head(2_000)
    rng = np.random.default_rng(1)
    clv = pl.DataFrame(
        {"customer_id": profile["customer_id"], "clv": rng.lognormal(5, 1, profile.height)}
    )
    clv = clv.with_columns(  # one unknown clv
        pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise("clv").alias("clv")
    )
    cfg = ChurnConfig(drivers_min_probability=1.0, drivers_top_n=20)
    scores = score_churn(profile, churn_model, cfg, clv)
    out = scores.frame
    var = out["value_at_risk"].to_numpy()
    assert out["value_at_risk"].null_count() == 1
    np.testing.assert_allclose(
        var[1:], out["churn_probability"].to_numpy()[1:] * clv["clv"].to_numpy()[1:]
    )
    explained = out["churn_drivers"].list.len().to_numpy() > 0
    top20 = set(np.argsort(-np.nan_to_num(var, nan=-1))[:20])
    assert scores.n_explained == 20
    assert set(np.flatnonzero(explained)) <= top20
    assert scores.importance.height == churn_model.n_features_in_
    without_loyalty = score_customers(profile, churn_model, None, cfg, clv)
    assert without_loyalty["loyalty_score"].null_count() == profile.height
    # the unknown clv has no offer profit and is never "worth a call"
    assert out["retention_profit"].null_count() == 1 and out["churn_risk_band"][0] != "high"
    # dearer offers make fewer customers worth one; probability bands ignore the money
    cheap, dear = RetentionConfig(offer_cost=2.0), RetentionConfig(offer_cost=50.0)
    high = [
        (score_churn(profile, churn_model, cfg, clv, t).frame["churn_risk_band"] == "high").sum()
        for t in (cheap, dear)
    ]
    assert high[0] > high[1]
    by_p = score_churn(profile, churn_model, cfg, clv, RetentionConfig(bands="probability"))
    p = by_p.frame["churn_probability"].to_numpy()
    assert by_p.frame["churn_risk_band"].equals(
        risk_band(p, cfg.risk_thresholds), check_names=False
    )
    no_clv = score_churn(profile, churn_model, cfg).frame
    assert no_clv["churn_risk_band"].equals(risk_band(p, cfg.risk_thresholds), check_names=False)
    assert no_clv["retention_profit"].null_count() == profile.height


def test_train_passes_the_typed_lightgbm_section(
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
) -> None:
    train, valid, _ = cuts
    cfg = ChurnConfig.model_validate(
        {"model": "lightgbm", "lightgbm": {"n_estimators": 20, "reg_lambda": 1.0}}
    )
    churn = train_churn(train, valid, cfg)
    assert churn.lgbm_params == cfg.lightgbm.model_dump()
    assert churn.params_["reg_lambda"] == 1.0 and churn.params_["min_child_samples"] == 300
    lcfg = LoyaltyConfig.model_validate({"lightgbm": {"n_estimators": 20}})
    loyalty = train_loyalty(train, valid, lcfg)
    assert loyalty.lgbm_params == lcfg.lightgbm.model_dump()
    assert loyalty.params_["num_leaves"] == 15 and loyalty.params_["subsample_freq"] == 0


def test_driver_batches_give_the_same_column_as_one_pass(
    churn_model: ChurnModel,
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, valid, _ = cuts
    profile = valid.head(1_000)
    cfg = ChurnConfig(drivers_min_probability=0.05, drivers_top_n=50)
    whole = score_churn(profile, churn_model, cfg)
    monkeypatch.setattr(churn.scoring, "DRIVER_BATCH_ROWS", 37)
    batched = score_churn(profile, churn_model, cfg)
    assert_frame_equal(batched.frame, whole.frame)
    assert_frame_equal(batched.importance, whole.importance, check_exact=False)
    # and both are the explained rows' drivers, empty lists for everyone else
    p = whole.frame["churn_probability"].to_numpy()
    explained = select_for_drivers(p, cfg.drivers_min_probability, cfg.drivers_top_n)
    assert 37 < whole.n_explained == explained.sum() < profile.height
    subset = profile.filter(pl.Series(explained))
    reasons = top_drivers(
        churn_model.contributions(subset), churn_model.feature_names_in_, cfg.n_drivers
    )
    explained_drivers = subset.select("customer_id").with_columns(reasons.alias("churn_drivers"))
    expected = (
        profile.select("customer_id")
        .join(explained_drivers, on="customer_id", how="left", maintain_order="left")
        .get_column("churn_drivers")
        .fill_null(pl.lit([], dtype=DRIVERS_DTYPE))
    )
    assert whole.frame["churn_drivers"].equals(expected)


def test_a_profile_waiting_in_a_file_scores_as_the_frame_does(
    churn_model: ChurnModel,
    loyalty_model: LoyaltyModel,
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run's profile is a scan of its spill file, scored a slice at a time (here slices of
    700 rows): the same probabilities, bands, drivers, reasons and loyalty as the frame."""
    import churn.model

    _, valid, _ = cuts
    profile = valid.head(3_000).drop("churned_within_90d", "loyalty_class", "next_nps")
    clv = pl.DataFrame(
        {"customer_id": profile["customer_id"], "clv": np.linspace(10, 900, profile.height)}
    )
    cfg = ChurnConfig(drivers_min_probability=0.3, drivers_top_n=200, n_drivers=3)
    in_memory = score_customers(profile, churn_model, loyalty_model, cfg, clv)
    path = tmp_path / "profile.parquet"
    profile.write_parquet(path, row_group_size=500)
    monkeypatch.setattr(churn.model, "SCORING_BATCH_ROWS", 700)
    scanned = score_customers(pl.scan_parquet(path), churn_model, loyalty_model, cfg, clv)
    assert in_memory["churn_drivers"].list.len().gt(0).sum() > 0
    assert_frame_equal(scanned, in_memory)


def test_predictions_made_elsewhere_score_as_those_made_here(
    churn_model: ChurnModel,
    loyalty_model: LoyaltyModel,
    cuts: tuple[pl.DataFrame, pl.DataFrame, np.ndarray],
) -> None:
    """The predictions of everyone come back from the executors in their files' order, not the
    profile's (``ProfileCache.map``): matched by customer, they give the same scores as
    predicting here; predictions that miss a customer are refused."""
    from churn.scoring import add_loyalty, predict_customers

    _, valid, _ = cuts
    profile = valid.head(2_000).drop("churned_within_90d", "loyalty_class", "next_nps")
    cfg = ChurnConfig(drivers_min_probability=0.3, drivers_top_n=200, n_drivers=3)
    here = score_customers(profile, churn_model, loyalty_model, cfg)
    elsewhere = predict_customers(profile, churn_model, loyalty_model).sample(
        fraction=1.0, shuffle=True, seed=1
    )
    assert not elsewhere["customer_id"].equals(profile["customer_id"])
    scored = score_churn(profile, churn_model, cfg, predictions=elsewhere)
    assert_frame_equal(add_loyalty(scored.frame, profile, loyalty_model, elsewhere), here)
    with pytest.raises(ValueError, match="1999 rows for the profile's 2000 customers"):
        score_churn(profile, churn_model, cfg, predictions=elsewhere.head(1_999))
    other = elsewhere.with_columns(pl.col("customer_id").shift(1, fill_value=-1))
    with pytest.raises(ValueError, match="no rows for 1 of the profile's customers"):
        score_churn(profile, churn_model, cfg, predictions=other)
