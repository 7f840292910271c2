"""Feature matrix: column choice, stored categories, extras typed automatically."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import features
from churn.dataset import FeatureSpec
from crm_engine.config import FeaturesConfig


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "region": ["north", "south", None, "north"],
            "plan_type": ["prepaid", "postpaid", "prepaid", "unknown"],
            "tenure_days": pl.Series([10, 20, None, 40], dtype=pl.Int64),
            "has_purchase": [True, False, True, True],
            "revenue_60d": [1.0, 2.0, 3.0, 4.0],  # a windowed name from another config
            "churned_within_90d": [True, False, False, True],
            "churned_within_30d": [True, False, False, False],
            "loyalty_class": ["promoter", None, None, "passive"],
            "next_nps": [9, None, None, 7],
            "vip_level": [1, 2, 3, 1],  # extra, numeric
            "segment_code": ["a", "b", "a", "c"],  # extra, categorical
            "unrelated": [0.1, 0.2, 0.3, 0.4],  # not a planned feature: ignored
        }
    )


def _declared() -> list[str]:
    """The feature columns a profile built with ``spend_windows_days = [60]`` declares."""
    cfg = FeaturesConfig(spend_windows_days=[60])
    numeric, categorical = features.model_features(features.profile_schema(cfg))
    return [c for c in (*numeric, *categorical) if c in _frame().columns]


def test_features_exclude_keys_labels_and_unknown_columns() -> None:
    spec = FeatureSpec.from_frame(_frame(), features=_declared())
    names = spec.feature_names
    for banned in (
        "customer_id",
        "churned_within_90d",
        "churned_within_30d",
        "loyalty_class",
        "next_nps",
        "unrelated",
        "vip_level",
        "segment_code",
    ):
        assert banned not in names
    assert spec.numeric == ("tenure_days", "has_purchase", "revenue_60d")
    assert spec.categorical == {
        "region": ("north", "south"),
        "plan_type": ("postpaid", "prepaid", "unknown"),
    }


def test_extra_features_typed_by_dtype() -> None:
    spec = FeatureSpec.from_frame(_frame(), ["vip_level", "segment_code"])
    assert "vip_level" in spec.numeric
    assert spec.categorical["segment_code"] == ("a", "b", "c")


def test_extra_features_must_exist_and_not_be_labels() -> None:
    with pytest.raises(ValueError, match=r"extra_features \['nope'\]"):
        FeatureSpec.from_frame(_frame(), ["nope"])
    with pytest.raises(ValueError, match="keys or labels"):
        FeatureSpec.from_frame(_frame(), ["churned_within_90d"])


def test_categories_fixed_by_training_not_by_scoring_batch() -> None:
    spec = FeatureSpec.from_frame(_frame())
    batch = pl.DataFrame(
        {
            "region": ["south", "mars", None],
            "plan_type": ["unknown", "prepaid", "prepaid"],
            "tenure_days": [1, 2, 3],
            "has_purchase": [False, True, True],
            "revenue_60d": [0.0, 0.0, 0.0],
        }
    )
    x = spec.to_pandas(batch)
    assert str(x["region"].dtype) == "category"
    assert list(x["region"].cat.categories) == ["north", "south"]
    # same value -> same code as in training; unseen and null -> missing (-1)
    assert x["region"].cat.codes.tolist() == [1, -1, -1]
    assert x["plan_type"].cat.codes.tolist() == [2, 1, 1]
    assert x["has_purchase"].dtype == np.float64
    assert x["tenure_days"].tolist() == [1.0, 2.0, 3.0]
    # LightGBM's matrix: the same values and codes, C order, missing as NaN
    m = spec.to_matrix(batch)
    assert m.flags["C_CONTIGUOUS"] and m.dtype == np.float64
    assert m.shape == (3, len(spec.feature_names))
    region = spec.feature_names.index("region")
    np.testing.assert_array_equal(m[:, region], [1.0, np.nan, np.nan])
    np.testing.assert_array_equal(m[:, spec.feature_names.index("plan_type")], [2.0, 1.0, 1.0])
    numbers = x[list(spec.numeric)].to_numpy(dtype=np.float64)
    np.testing.assert_array_equal(m[:, : len(spec.numeric)], numbers)


def test_missing_feature_column_is_named() -> None:
    spec = FeatureSpec.from_frame(_frame())
    with pytest.raises(ValueError, match="tenure_days"):
        spec.to_pandas(_frame().drop("tenure_days"))


def test_json_round_trip() -> None:
    spec = FeatureSpec.from_frame(_frame(), ["segment_code"])
    assert FeatureSpec.from_json(spec.to_json()) == spec


def test_default_features_are_the_default_profile_schema() -> None:
    # without a declaration only the default profile's columns count: revenue_60d is not one
    spec = FeatureSpec.from_frame(_frame())
    assert spec.numeric == ("tenure_days", "has_purchase")


def test_declared_feature_missing_from_frame_fails_loudly() -> None:
    with pytest.raises(ValueError, match=r"declared profile feature\(s\) missing.*latency"):
        FeatureSpec.from_frame(_frame(), features=[*_declared(), "latency_ms_mean_6m"])


def test_lightgbm_learns_the_same_trees_from_the_matrix_as_from_pandas() -> None:
    """The matrix LightGBM now reads (no copy) against the pandas frame it read before: the
    same trees (the model text differs only in the pandas categories it stored) and the same
    predictions and contributions, bit for bit."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    n = 4_000
    region = rng.choice(["north", "south", "east", "west"], n).astype(object)
    region[rng.random(n) < 0.05] = None
    frame = pl.DataFrame(
        {
            "region": region,
            "plan_type": rng.choice(["prepaid", "postpaid"], n),
            "tenure_days": rng.integers(0, 3000, n),
            "has_purchase": rng.random(n) < 0.8,
        }
    ).with_columns(  # a tenth of the tenures missing
        pl.when(pl.Series(rng.random(n) < 0.1))
        .then(None)
        .otherwise("tenure_days")
        .alias("tenure_days")
    )
    south = (frame["region"] == "south").fill_null(False).to_numpy()
    y = (rng.random(n) < 0.2 + 0.3 * south).astype(int)
    spec = FeatureSpec.from_frame(frame)
    params = {"n_estimators": 20, "num_leaves": 7, "verbose": -1, "n_jobs": 1}
    categorical = list(spec.categorical)
    old = lgb.LGBMClassifier(**params).fit(
        spec.to_pandas(frame), y, categorical_feature=categorical
    )
    new = lgb.LGBMClassifier(**params).fit(
        spec.to_matrix(frame), y, feature_name=spec.feature_names, categorical_feature=categorical
    )
    differ = [
        (a, b)
        for a, b in zip(
            old.booster_.model_to_string().splitlines(),
            new.booster_.model_to_string().splitlines(),
            strict=True,
        )
        if a != b
    ]
    assert [a.split(":")[0] for a, _ in differ] == ["pandas_categorical"]
    for contrib in (False, True):
        np.testing.assert_array_equal(
            old.booster_.predict(spec.to_pandas(frame), pred_contrib=contrib),
            new.booster_.predict(spec.to_matrix(frame), pred_contrib=contrib),
        )
    # a model fitted on pandas before (a registered one) scores the matrix the same
    np.testing.assert_array_equal(
        old.booster_.predict(spec.to_matrix(frame)), old.booster_.predict(spec.to_pandas(frame))
    )
