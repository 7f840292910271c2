"""Profile assembly: population, fills, absent tables, declared schema and exact spot checks."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy.stats import spearmanr

import features
from crm_engine.config import FeaturesConfig
from crm_engine.generator import generate
from crm_engine.io import DataError, load_tables
from tests.features._tiny import AS_OF, T, frame, lazy


def _profile(frames: dict[str, pl.DataFrame], as_of: dt.date = AS_OF) -> pl.DataFrame:
    return features.build_profile(lazy(frames), as_of).collect(engine="streaming")


def _row(df: pl.DataFrame, customer_id: int) -> dict:
    rows = df.filter(pl.col("customer_id") == customer_id).to_dicts()
    assert len(rows) == 1
    return rows[0]


def test_one_row_per_active_customer(tiny: dict[str, pl.DataFrame]) -> None:
    df = _profile(tiny)
    # 3 signs up after as_of, 6 on as_of itself, 4 churned before; 5 churns on as_of (unknown).
    assert df["customer_id"].to_list() == [1, 2, 5]
    assert df["customer_id"].is_unique().all()


def test_population_counts_say_who_is_left_out(tiny: dict[str, pl.DataFrame]) -> None:
    counts = features.population_counts(lazy(tiny)["customers"], AS_OF).collect()
    assert counts.row(0, named=True) == {
        "customers": 6,
        "churned_before_as_of": 1,  # 4
        "not_yet_signed_up": 2,  # 3 after as_of, 6 on it
    }
    assert counts.schema == pl.Schema({k: pl.Int64 for k in counts.columns})
    assert counts.item(0, "customers") - 1 - 2 == _profile(tiny).height


def test_schema_matches_declaration(tiny: dict[str, pl.DataFrame]) -> None:
    lf = features.build_profile(lazy(tiny), AS_OF)
    assert lf.collect_schema() == features.profile_schema()
    df = lf.collect(engine="streaming")
    assert df.schema == features.profile_schema()
    declared = [c for _, cols in features.PROFILE_GROUPS.values() for c in cols]
    assert df.columns == declared
    assert len(declared) == len(set(declared))


def test_planned_column_names_present() -> None:
    cols = set(features.profile_schema())
    planned = {
        "customer_id", "age", "age_band", "tenure_days", "revenue_30d", "revenue_90d",
        "revenue_365d", "avg_monthly_spend", "spend_trend", "share_other", "refund_count",
        "days_since_last_payment", "has_purchase", "frequency", "recency", "T",
        "monetary_value", "data_mb_3m", "sms_12m", "voice_trend", "zero_usage_share_12m",
        "latency_ms_worst_3m", "coverage_5g_share_mean_3m", "complaints_90d", "inquiries_365d",
        "complaints_365d_device", "open_tickets", "resolution_hours_max",
        "days_since_last_complaint", "interaction_satisfaction_mean", "last_nps", "last_csat",
        "days_since_survey", "n_contacts", "call_minutes_12m", "outside_region_share",
        "influence_score", "churned_contacts_share_90d", "contract_days_left",
        "contract_months_left", "first_year_share_90d", "network_experience_score", "nps_mean",
    }  # fmt: skip
    assert planned <= cols


def test_customer_without_transactions_gets_zeros(tiny: dict[str, pl.DataFrame]) -> None:
    r = _row(_profile(tiny), 2)
    assert r["tenure_days"] == (AS_OF - dt.date(2023, 6, 10)).days == 205
    assert r["has_purchase"] is False
    assert (r["frequency"], r["recency"], r["monetary_value"]) == (0, 0.0, 0.0)
    assert r["T"] == 204.0
    assert r["revenue_365d"] == 0.0 and r["refund_count"] == 0 and r["spend_trend"] == 0.0
    assert r["days_since_last_payment"] is None
    assert r["complaints_365d"] == 0 and r["open_tickets"] == 0
    assert r["data_mb_3m"] is None and r["data_trend"] == 0.0
    assert r["last_nps"] is None


def test_who_spot_checks(tiny: dict[str, pl.DataFrame]) -> None:
    df = _profile(tiny)
    r1, r2 = _row(df, 1), _row(df, 2)
    assert (r1["age"], r1["age_band"]) == (33, "25-34")  # birthday 20 May not reached yet
    assert (r2["age"], r2["age_band"]) == (None, "unknown")
    assert (r2["gender"], r2["occupation"], r2["area_type"]) == ("unknown",) * 3
    assert _row(df, 5)["age_band"] == "35-49"  # 44 on 2024-01-01
    assert _profile(tiny, dt.date(2024, 5, 20)).filter(pl.col("customer_id") == 1)["age"][0] == 34


def test_spend_spot_checks(tiny: dict[str, pl.DataFrame]) -> None:
    r = _row(_profile(tiny), 1)
    assert r["revenue_30d"] == pytest.approx(1.0)  # -3 + 4 (the 100 on as_of is not seen)
    assert r["revenue_90d"] == pytest.approx(13.0)
    assert r["revenue_365d"] == pytest.approx(39.0)
    assert r["avg_monthly_spend"] == pytest.approx(39.0 / 12)
    assert r["spend_trend"] == pytest.approx(0.0)  # 16 in the last 90 days, 16 before
    assert r["share_topup"] == pytest.approx(10 / 42)
    assert r["share_bill"] == pytest.approx(12 / 42)
    assert r["share_addon"] == pytest.approx(4 / 42)
    assert r["share_device"] == pytest.approx(16 / 42)
    assert r["share_other"] == 0.0
    assert (r["refund_count"], r["refund_amount"]) == (1, 3.0)
    assert r["days_since_last_payment"] == 4
    r5 = _row(_profile(tiny), 5)
    assert r5["share_other"] == 1.0 and r5["days_since_last_payment"] == 1


def test_btyd_spot_checks(tiny: dict[str, pl.DataFrame]) -> None:
    r = _row(_profile(tiny), 1)
    # purchase days: Jan 5 (10), Aug 1 (16), Nov 5 (5 + 7), Dec 28 (4); the refund is no purchase
    assert r["frequency"] == 3
    assert r["recency"] == 357.0
    assert r["T"] == 360.0
    assert r["monetary_value"] == pytest.approx(32 / 3)
    r5 = _row(_profile(tiny), 5)
    assert (r5["frequency"], r5["recency"], r5["T"], r5["monetary_value"]) == (0, 0.0, 0.0, 0.0)


def test_usage_and_network_spot_checks(tiny: dict[str, pl.DataFrame]) -> None:
    r = _row(_profile(tiny), 1)
    assert (r["data_mb_3m"], r["voice_min_3m"], r["sms_3m"]) == (200.0, 20.0, 2.0)
    assert r["data_mb_12m"] == pytest.approx(140.0)
    assert r["voice_min_12m"] == pytest.approx(20.0)
    assert r["sms_12m"] == pytest.approx(1.2)
    assert r["data_trend"] == pytest.approx(0.6)  # (200 - 50) / (200 + 50)
    assert r["voice_trend"] == pytest.approx(0.0)
    assert r["zero_usage_share_12m"] == pytest.approx(0.2)
    assert _row(_profile(tiny), 5)["data_mb_12m"] is None  # only a month 13 months back
    assert r["dropped_call_rate_mean_3m"] == pytest.approx(0.02)
    assert r["dropped_call_rate_worst_3m"] == pytest.approx(0.03)
    assert r["call_setup_success_rate_worst_3m"] == pytest.approx(0.95)
    assert r["avg_download_mbps_worst_3m"] == pytest.approx(20.0)
    assert r["latency_ms_mean_3m"] == pytest.approx(45.0)  # null month skipped
    assert r["latency_ms_worst_3m"] == pytest.approx(60.0)
    assert r["packet_loss_pct_worst_3m"] == pytest.approx(0.5)
    assert r["coverage_5g_share_worst_3m"] == pytest.approx(0.2)


def _month_score(dcr: float, cssr: float, mbps: float, lat: float | None, loss: float,
                 cov: float) -> float:  # fmt: skip
    """The score of one month written out: log-ratios to the typical network, good side up."""
    cov = min(max(cov, 0.01), 0.99)
    parts = [
        -math.log(dcr / 0.01),
        -math.log((1 - cssr) / 0.01),
        math.log(mbps / 50.0),
        *([] if lat is None else [-math.log(lat / 30.0)]),
        -math.log(loss / 0.5),
        math.log(cov / (1 - cov)),
    ]
    return sum(parts) / len(parts)


def test_network_experience_score_covers_every_month_seen(tiny: dict[str, pl.DataFrame]) -> None:
    r = _row(_profile(tiny), 1)
    months = [
        _month_score(0.5, 0.5, 1.0, 500.0, 5.0, 0.0),  # September: outside the 3-month window
        _month_score(0.01, 0.99, 50.0, 30.0, 0.1, 0.5),
        _month_score(0.03, 0.95, 20.0, 60.0, 0.5, 0.2),
        _month_score(0.02, 0.97, 35.0, None, 0.3, 0.4),  # latency null: the other five
    ]  # January (as_of's month) is not seen
    assert r["network_experience_score"] == pytest.approx(sum(months) / 4, rel=1e-8)
    assert months[0] < -2 < 0 < months[1]
    assert _row(_profile(tiny), 2)["network_experience_score"] is None  # no network rows


def test_first_year_share_of_the_window_ahead(tiny: dict[str, pl.DataFrame]) -> None:
    column = "first_year_share_90d"
    df = _profile(tiny, dt.date(2024, 4, 1))
    # 2 signed up on 2023-06-10: tenure 296 days, 69 of the next 90 still in the first year
    assert _row(df, 2)[column] == pytest.approx(69 / 90)
    assert _row(df, 1)[column] == 0.0
    assert _row(_profile(tiny), 2)[column] == 1.0  # tenure 205: the whole window
    cfg = FeaturesConfig(ahead_days=30)
    short = features.build_profile(lazy(tiny), dt.date(2024, 4, 1), cfg).collect()
    assert _row(short, 2)["first_year_share_30d"] == 1.0
    assert "first_year_share_90d" not in short.columns


def test_complaint_rate_over_two_years_of_tenure(tiny: dict[str, pl.DataFrame]) -> None:
    month = 365.25 / 12
    # 1 (tenure 4 years): complaints of 2022-06-01, 2023-06-01 and 2023-12-10 in the 730 days
    # before as_of, over 730 days; the one of 2024-01-05 is not seen, inquiries do not count
    assert _row(_profile(tiny), 1)["complaint_rate_730d"] == pytest.approx(3 / (730 / month))
    # 2 (tenure 205 days): one complaint over its 205 days; 5: a request is no complaint
    extra = frame("interactions", [(2, T(2023, 12, 1), None, "app", "complaint", "billing")])
    frames = {**tiny, "interactions": pl.concat([tiny["interactions"], extra])}
    df = _profile(frames)
    assert _row(df, 2)["complaint_rate_730d"] == pytest.approx(1 / (205 / month))
    assert _row(df, 5)["complaint_rate_730d"] == 0.0
    assert _row(_profile(tiny), 2)["complaint_rate_730d"] == 0.0


def test_profile_reads_the_hazard_inputs_of_the_generated_operator(tmp_path: Path) -> None:
    """The generator's churn hazard rises around a contract's end, in the first year and with
    a persistent network badness: the profile carries each as one column a model can use."""
    data = tmp_path / "data"
    generate(data, customers=2_000, months=24, seed=5)
    as_of = dt.date(2024, 10, 3)
    profile = features.build_profile(load_tables(data), as_of).collect()
    truth = pl.read_parquet(data / "_truth" / "customers.parquet")
    j = profile.join(truth, on="customer_id", suffix="_truth")
    assert j.height == profile.height > 1_000
    # the single score follows the latent badness better than any one KPI's recent mean
    score = spearmanr(
        j["network_experience_score"], -j["network_badness"], nan_policy="omit"
    ).statistic
    recent = [
        abs(spearmanr(j[c], j["network_badness"], nan_policy="omit").statistic)
        for c in profile.columns
        if c.endswith("_mean_3m")
    ]
    assert len(recent) == 6
    assert score > 0.9 and score > max(recent) + 0.01, (score, recent)
    # months to the term's end: the hazard's own months (0 = ends in as_of's month)
    post = j.filter(pl.col("plan_type") == "postpaid")
    end = post["contract_end_date"]
    want = (end.dt.year() - 2024) * 12 + end.dt.month() - 10
    assert post.height > 300
    assert post["contract_months_left"].to_list() == want.to_list()
    assert j.filter(pl.col("plan_type") == "prepaid")["contract_months_left"].null_count() == (
        j.height - post.height
    )
    # the first year: whole window for the newest, none of it after 365 days
    share = j["first_year_share_90d"]
    assert ((share == 1.0) == (j["tenure_days"] <= 275)).all()
    assert ((share == 0.0) == (j["tenure_days"] >= 365)).all()
    assert share.is_between(0.0, 1.0).all()
    # the latent traits behind the hazard, read over more history than one year or one answer
    rate = spearmanr(j["complaint_rate_730d"], j["complaint_rate"]).statistic
    year = spearmanr(j["complaints_365d"], j["complaint_rate"]).statistic
    assert rate > year + 0.01, (rate, year)
    surveyed = j.filter(pl.col("nps_mean").is_not_null())
    mean = spearmanr(surveyed["nps_mean"], surveyed["satisfaction"]).statistic
    last = spearmanr(surveyed["last_nps"], surveyed["satisfaction"]).statistic
    assert mean >= last and mean > 0.8, (mean, last)


def test_mid_month_as_of_sees_only_complete_months(tiny: dict[str, pl.DataFrame]) -> None:
    # On 2024-01-15 January is not complete: the 999 row is still unseen.
    r = _row(_profile(tiny, dt.date(2024, 1, 15)), 1)
    assert r["data_mb_3m"] == pytest.approx(200.0)
    assert r["latency_ms_worst_3m"] == pytest.approx(60.0)


def test_service_and_survey_spot_checks(tiny: dict[str, pl.DataFrame]) -> None:
    r = _row(_profile(tiny), 1)
    assert (r["complaints_90d"], r["complaints_365d"]) == (1, 2)
    assert (r["inquiries_90d"], r["inquiries_365d"]) == (1, 1)
    assert r["complaints_365d_network"] == 1
    assert r["complaints_365d_other"] == 1  # "roaming" is not a known topic
    assert r["complaints_365d_billing"] == 0  # the billing complaint is 19 months old
    assert r["open_tickets"] == 1  # the inquiry closes after as_of
    assert r["resolution_hours_mean"] == pytest.approx(24.0)  # 36 h and 12 h
    assert r["resolution_hours_max"] == pytest.approx(36.0)
    assert r["days_since_last_complaint"] == 22
    assert r["interaction_satisfaction_mean"] == pytest.approx(3.0)  # the 5 is not seen yet
    assert (r["last_nps"], r["last_csat"], r["days_since_survey"]) == (8, 4, 108)
    assert r["nps_mean"] == pytest.approx((3 + 8) / 2)  # the 10 of 2024-01-10 is not seen
    r5 = _row(_profile(tiny), 5)
    assert (r5["open_tickets"], r5["complaints_365d"], r5["days_since_last_complaint"]) == (
        1, 0, None,
    )  # fmt: skip
    assert r5["last_nps"] is None and r5["nps_mean"] is None


def test_influence_spot_checks(tiny: dict[str, pl.DataFrame]) -> None:
    df = _profile(tiny)
    r1, r2, r5 = _row(df, 1), _row(df, 2), _row(df, 5)
    assert (r1["n_contacts"], r1["call_minutes_12m"]) == (2, 17.0)  # self-call dropped
    assert r1["outside_region_share"] == 1.0
    assert r1["churned_contacts_share_90d"] == 0.5  # contact 4 churned 2023-12-01
    assert (r2["n_contacts"], r2["call_minutes_12m"], r2["outside_region_share"]) == (1, 15.0, 1.0)
    assert (r5["n_contacts"], r5["outside_region_share"]) == (1, 0.0)  # 99 is no customer
    assert r1["influence_score"] == 1.0
    assert 0.0 < r5["influence_score"] < r2["influence_score"] < 1.0


def test_pagerank_normalised_and_ordered() -> None:
    edges = pl.DataFrame(
        {
            "customer_id": [1, 2, 1, 3, 1, 4],
            "contact_id": [2, 1, 3, 1, 4, 1],
            "minutes": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    pr = features.pagerank(edges, iterations=50)
    scores = dict(zip(pr["customer_id"], pr["influence_score"], strict=True))
    assert scores[1] == 1.0
    assert scores[2] == pytest.approx(scores[3]) and scores[2] < 0.5
    # Closed form for a star of k=3 leaves, n=4, d=0.85: r_leaf = (1-d)/n + d * r_centre / k
    # and r_centre = (1-d)/n + d * k * r_leaf give r_leaf / r_centre = 0.173423 / 0.479730.
    # (200 iterations: the error shrinks like d**iterations).
    converged = features.pagerank(edges, iterations=200).sort("customer_id")
    assert converged["influence_score"][3] == pytest.approx(0.1734234 / 0.4797297, rel=1e-6)
    shuffled = features.pagerank(edges.reverse(), iterations=50)
    assert shuffled.equals(pr)  # edge order does not change a bit
    assert features.pagerank(edges.clear()).height == 0


@pytest.mark.parametrize(
    ("dropped", "group"),
    [
        ("usage", "usage"),
        ("network", "network"),
        ("interactions", "service"),
        ("surveys", "surveys"),
        ("calls", "influence"),
    ],
)
def test_absent_optional_table_drops_its_group(
    tiny: dict[str, pl.DataFrame], dropped: str, group: str
) -> None:
    full = _profile(tiny)
    frames = {k: v for k, v in tiny.items() if k != dropped}
    df = _profile(frames)
    group_cols = set(features.PROFILE_GROUPS[group][1])
    assert not group_cols & set(df.columns)
    assert set(df.columns) == set(full.columns) - group_cols
    assert_frame_equal(df, full.select(df.columns))


def test_required_tables_and_config_windows(tiny: dict[str, pl.DataFrame]) -> None:
    with pytest.raises(DataError, match="missing: \\['transactions'\\]"):
        features.build_profile({"customers": tiny["customers"].lazy()}, AS_OF)
    cfg = FeaturesConfig(spend_windows_days=[7, 60], network_months=2, contagion_days=30,
                         age_bands=[30, 60])  # fmt: skip
    df = features.build_profile(lazy(tiny), "2024-01-01", cfg).collect()
    assert {"revenue_7d", "revenue_60d", "latency_ms_worst_2m",
            "churned_contacts_share_30d"} <= set(df.columns)  # fmt: skip
    assert df.schema == features.profile_schema(cfg)
    assert _row(df, 1)["age_band"] == "30-59"
    assert _row(df, 1)["latency_ms_worst_2m"] == pytest.approx(60.0)


def test_string_customer_ids(tiny: dict[str, pl.DataFrame]) -> None:
    frames = {
        name: df.with_columns(
            pl.col(c).cast(pl.String) for c in ("customer_id", "caller_id", "callee_id")
            if c in df.columns
        )
        for name, df in tiny.items()
    }  # fmt: skip
    df = _profile(frames)
    assert df.schema["customer_id"] == pl.String
    expected = _profile(tiny).with_columns(pl.col("customer_id").cast(pl.String))
    assert_frame_equal(df, expected)


def test_age_band_labels() -> None:
    assert features.age_band_labels([25, 35, 50, 65]) == [
        "<25", "25-34", "35-49", "50-64", "65+",
    ]  # fmt: skip
