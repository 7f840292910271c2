"""Feature labels and units: one declaration for names, reasons and the report."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import segmentation
import segmentation.profiles
from crm_engine.config import FeaturesConfig
from crm_engine.feature_labels import alias_group, feature_label, format_value, plain_label
from features import model_features, profile_schema


@pytest.mark.parametrize(
    "cfg",
    [
        FeaturesConfig(),
        FeaturesConfig(
            spend_windows_days=[30, 180, 730],
            service_windows_days=[30],
            network_months=6,
            contagion_days=60,
        ),
    ],
)
def test_every_model_feature_has_a_label_and_unit(cfg: FeaturesConfig) -> None:
    numeric, categorical = model_features(profile_schema(cfg))
    unlabelled = [f for f in (*numeric, *categorical) if feature_label(f) is None]
    assert unlabelled == []
    assert all(feature_label(f).is_categorical for f in categorical)  # type: ignore[union-attr]
    assert not any(feature_label(f).unit == "category" for f in numeric)  # type: ignore[union-attr]


def test_labels_follow_the_windows() -> None:
    assert plain_label("revenue_365d") == "12-month spend"
    assert plain_label("revenue_30d") == "30-day spend"
    assert plain_label("complaints_90d") == "90-day complaints"
    assert plain_label("complaints_365d_network") == "12-month network complaints"
    assert plain_label("coverage_5g_share_mean_6m") == "5G coverage"
    assert plain_label("latency_ms_worst_3m") == "latency (worst month)"
    assert plain_label("share_topup") == "top-up share of spend"
    assert plain_label("churned_contacts_share_90d") == "contacts who left in 90 days"
    assert plain_label("plan_type") == "plan"
    assert plain_label("my_extra_column") == "my extra column"


def test_values_are_written_with_their_units() -> None:
    assert format_value("coverage_5g_share_mean_3m", 0.12) == "12%"
    assert format_value("dropped_call_rate_mean_3m", 0.0077) == "0.8%"
    assert format_value("packet_loss_pct_mean_3m", 0.383) == "0.38%"
    assert format_value("tenure_days", 730) == "730 days"
    assert format_value("tenure_days", 1) == "1 day"
    assert format_value("age", 39) == "39 years"
    assert format_value("revenue_365d", 1256.054) == "1,256.05"
    assert format_value("data_mb_12m", 850.0) == "850 MB a month"
    assert format_value("data_mb_12m", 10541.4) == "10.3 GB a month"
    assert format_value("voice_min_3m", 283.9) == "284 min a month"
    assert format_value("avg_download_mbps_mean_3m", 79.1) == "79 Mbps"
    assert format_value("spend_trend", -0.3) == "-0.30"
    assert format_value("complaints_90d", 2) == "2"
    assert format_value("interaction_satisfaction_mean", 2.54) == "2.5"
    assert format_value("has_purchase", False) == "no"
    assert format_value("occupation", "manual_worker") == "manual worker"
    assert format_value("last_nps", None) == "unknown"
    assert format_value("latency_ms_mean_3m", float("nan")) == "unknown"
    assert format_value("my_extra_column", 3.25) == "3.25"


def test_one_declaration_of_plain_words() -> None:
    from crm_engine import feature_labels

    assert segmentation.plain_label is feature_labels.plain_label
    assert segmentation.profiles.plain_label is feature_labels.plain_label
    assert not hasattr(segmentation.naming, "PLAIN_LABELS")


def test_alias_groups() -> None:
    assert alias_group("T") == alias_group("tenure_days") == "tenure"
    assert alias_group("data_mb_3m") == alias_group("data_mb_12m") is not None
    assert alias_group("coverage_5g_share_worst_6m") == alias_group("coverage_5g_share_mean_6m")
    assert alias_group("revenue_365d") is None
    assert alias_group("coverage_5g_share") is None


@pytest.fixture(scope="module")
def generated_profile(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    from crm_engine.generator import generate
    from crm_engine.io import load_tables
    from features import build_profile, default_as_of

    out: Path = tmp_path_factory.mktemp("labels_operator") / "data"
    generate(out, customers=5_000, months=24, seed=3)
    tables = load_tables(out)
    return build_profile(tables, default_as_of(tables["transactions"])).collect()


def test_near_identical_features_share_an_alias_group(generated_profile: pl.DataFrame) -> None:
    numeric, _ = model_features(generated_profile.schema)
    x = generated_profile.select(pl.col(c).cast(pl.Float64) for c in numeric).to_numpy()
    x = np.where(np.isnan(x), np.nanmedian(x, axis=0), x)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(x, rowvar=False)
    undeclared = [
        (a, b, round(float(r[i, j]), 3))
        for (i, a), (j, b) in combinations(enumerate(numeric), 2)
        if abs(r[i, j]) > 0.98 and (alias_group(a) is None or alias_group(a) != alias_group(b))
    ]
    assert undeclared == []
