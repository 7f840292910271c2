"""The synthetic operator: contract, determinism, and consistency of the data with its truth."""

from __future__ import annotations

import json
import math
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from crm_engine.contracts import INPUT_TABLES
from crm_engine.generator import (
    PERSONAS,
    ChurnEffects,
    WorldParams,
    as_of_churn_probability,
    generate,
    true_churn_probability,
)
from crm_engine.io import load_tables

N = 4_000
SEED = 7
START = date(2023, 1, 1)
END = date(2025, 1, 1)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "data"
    summary = generate(out, customers=N, months=24, seed=SEED, start=START, chunk_size=1_500)
    assert summary.end == END
    assert summary.rows["customers"] == N
    return out


@pytest.fixture(scope="module")
def tables(data: Path) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(data / name) for name in INPUT_TABLES}


@pytest.fixture(scope="module")
def truth(data: Path) -> pl.DataFrame:
    return pl.read_parquet(data / "_truth" / "customers.parquet")


def _files(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    kw = {"customers": 1_200, "months": 12, "chunk_size": 500}
    a = _files(generate(tmp_path / "a", seed=3, **kw).out_dir)
    b = _files(generate(tmp_path / "b", seed=3, **kw).out_dir)
    c = _files(generate(tmp_path / "c", seed=4, **kw).out_dir)
    assert "transactions/part-00002.parquet" in a
    assert a.keys() == b.keys() == c.keys()
    assert a == b
    differing = [k for k in a if a[k] != c[k]]
    assert "transactions/part-00000.parquet" in differing
    assert "_truth/churn_hazard.parquet" in differing


def test_tables_match_the_contract(data: Path, tables: dict[str, pl.DataFrame]) -> None:
    lazy = load_tables(data)
    assert set(lazy) == set(INPUT_TABLES)
    for name, contract in INPUT_TABLES.items():
        df = tables[name]
        assert df.schema == contract.polars_schema(), name
        assert lazy[name].collect_schema() == contract.polars_schema(), name
        assert df.height > 0, name
        for col in contract.columns:
            if col not in contract.nullable:
                assert df[col].null_count() == 0, f"{name}.{col} has nulls"


def test_customers_table_shape(tables: dict[str, pl.DataFrame]) -> None:
    c = tables["customers"]
    assert c["customer_id"].is_unique().all()
    assert c["customer_id"].to_list() == list(range(1, N + 1))
    assert set(c["area_type"].drop_nulls()) == {"urban", "rural"}
    assert set(c["plan_type"]) == {"prepaid", "postpaid"}
    assert c["region"].n_unique() == 8
    assert 0.01 < c["birth_date"].null_count() / N < 0.06
    assert 0.025 < c["occupation"].null_count() / N < 0.08
    assert 0.3 < (c["signup_date"] < START).mean() < 0.7  # half signed up before the window
    assert c["signup_date"].min() < date(2017, 6, 1)  # tenures up to ~8 years
    assert c["signup_date"].max() < END
    churned = c.filter(pl.col("churn_date").is_not_null())
    assert (churned["churn_date"] > churned["signup_date"]).all()
    assert (churned["churn_date"] < END).all()


def _time_as_date(name: str) -> pl.Expr:
    col = INPUT_TABLES[name].time_column
    assert col is not None
    expr = pl.col(col)
    return expr.dt.date() if INPUT_TABLES[name].schema[col] != pl.Date else expr


@pytest.mark.parametrize("name", ["transactions", "usage", "network", "interactions", "surveys"])
def test_no_row_after_churn_or_before_signup(name: str, tables: dict[str, pl.DataFrame]) -> None:
    c = tables["customers"].select("customer_id", "signup_date", "churn_date")
    df = tables[name].with_columns(_time_as_date(name).alias("_d")).join(c, on="customer_id")
    assert df.height == tables[name].height  # no unknown customers
    monthly = INPUT_TABLES[name].monthly
    after = df.filter(
        pl.col("_d") >= pl.col("churn_date") if not monthly else pl.col("_d") > pl.col("churn_date")
    )
    assert after.height == 0
    first = pl.col("signup_date").dt.truncate("1mo") if monthly else pl.col("signup_date")
    assert df.filter(pl.col("_d") < first).height == 0
    assert df["_d"].max() < END


def test_calls_only_between_active_customers(tables: dict[str, pl.DataFrame]) -> None:
    c = tables["customers"].select(
        "customer_id", pl.col("signup_date").dt.truncate("1mo").alias("m0"), "churn_date"
    )
    calls = tables["calls"]
    assert (calls["caller_id"] != calls["callee_id"]).all()
    assert (calls["n_calls"] >= 1).all() and (calls["minutes"] > 0).all()
    for key in ("caller_id", "callee_id"):
        j = calls.join(c, left_on=key, right_on="customer_id")
        assert j.height == calls.height
        assert (
            j.filter(
                (pl.col("month") < pl.col("m0")) | (pl.col("month") > pl.col("churn_date"))
            ).height
            == 0
        )
    # heavy-tailed degree around 4
    deg = (
        pl.concat(
            [
                calls.select(pl.col("caller_id").alias("a"), pl.col("callee_id").alias("b")),
                calls.select(pl.col("callee_id").alias("a"), pl.col("caller_id").alias("b")),
            ]
        )
        .unique()
        .group_by("a")
        .len()
    )
    assert 2.5 < deg["len"].sum() / N < 5.0
    assert deg["len"].max() > 5 * deg["len"].median()


def test_value_ranges(tables: dict[str, pl.DataFrame]) -> None:
    i = tables["interactions"]
    closed = i.filter(pl.col("closed_at").is_not_null())
    assert (closed["closed_at"] >= closed["opened_at"]).all()
    assert 0.02 < i["closed_at"].null_count() / i.height < 0.10
    recent = i.filter(pl.col("opened_at") >= datetime(2024, 12, 1))
    assert recent["closed_at"].null_count() / recent.height > 0.15  # a pending backlog
    assert i["satisfaction"].drop_nulls().is_between(1, 5).all()
    assert set(i["kind"]) == {"complaint", "inquiry", "request"}
    s = tables["surveys"]
    assert s["nps"].is_between(0, 10).all()
    assert s["csat"].drop_nulls().is_between(1, 5).all()
    assert 0.05 < s["csat"].null_count() / s.height < 0.15
    u = tables["usage"]
    assert (u.select(pl.min_horizontal("data_mb", "voice_min", "sms")).to_series() >= 0).all()
    zero = u.filter((pl.col("data_mb") == 0) & (pl.col("voice_min") == 0)).height / u.height
    assert 0.005 < zero < 0.05
    n = tables["network"]
    for col in ("dropped_call_rate", "call_setup_success_rate", "coverage_5g_share"):
        assert n[col].drop_nulls().is_between(0, 1).all(), col
    assert (n["latency_ms"].drop_nulls() > 0).all()


def test_surveys_cover_about_three_percent_of_active_customers_a_month(
    tables: dict[str, pl.DataFrame],
) -> None:
    rate = tables["surveys"].height / tables["usage"].height  # usage: one row per active month
    assert 0.02 < rate < 0.035


def test_bgnbd_truth_matches_purchases(
    tables: dict[str, pl.DataFrame], truth: pl.DataFrame
) -> None:
    tx = tables["transactions"]
    prepaid = tables["customers"].filter(pl.col("plan_type") == "prepaid").select("customer_id")
    truth = truth.join(prepaid, on="customer_id", how="semi")  # postpaid: bills, below
    purchases = tx.filter(pl.col("amount") > 0)
    per = purchases.group_by("customer_id").agg(
        pl.len().cast(pl.Int64).alias("n"),
        pl.col("ts").min().alias("first"),
        pl.col("ts").max().alias("last"),
    )
    end = np.datetime64(END, "us")
    t = truth.join(per, on="customer_id", how="left").with_columns(pl.col("n").fill_null(0))
    # the observed process starts with a purchase at first_purchase_at
    seen = t.filter(pl.col("n") > 0)
    assert (seen["first"] == seen["first_purchase_at"]).all()
    # no purchase after the dropout (the dropout happens right after the last purchase)
    dead = seen.filter(pl.col("dropout_date").is_not_null())
    assert dead.height > 0.05 * truth.height
    assert (dead["last"].dt.date() <= dead["dropout_date"]).all()
    # repeat purchases vs E[X(t) | lambda, p] = (1 - exp(-lambda p t)) / p over the observed span
    stop = t["churn_date"].cast(pl.Datetime("us")).fill_null(end).to_numpy()
    first = t["first_purchase_at"].to_numpy()
    span = np.maximum((stop - first) / np.timedelta64(1, "D"), 0.0)
    lam, p = t["lambda_per_day"].to_numpy(), t["p_dropout"].to_numpy()
    expected = ((1 - np.exp(-lam * p * span)) / p).sum()
    observed = float(np.maximum(t["n"].to_numpy() - 1, 0).sum())
    assert observed / expected == pytest.approx(1.0, abs=0.04)
    assert 15 < tx.height / N < 55  # prepaid top-ups, postpaid monthly bills


def test_postpaid_customers_pay_a_bill_every_month_until_they_leave(
    data: Path, tables: dict[str, pl.DataFrame], truth: pl.DataFrame
) -> None:
    """No postpaid customer without a churn_date goes a month without a bill; each bill is
    the plan fee with a little noise; none comes on or after the churn date; and the
    minimum term ends 12 or 24 months after signup."""
    post = tables["customers"].filter(pl.col("plan_type") == "postpaid")
    assert post.height > 0.2 * N
    assert post["contract_end_date"].null_count() == 0
    months = post.select(
        (pl.col("contract_end_date").dt.year() - pl.col("signup_date").dt.year()) * 12
        + pl.col("contract_end_date").dt.month()
        - pl.col("signup_date").dt.month()
    ).to_series()
    assert set(months) == {12, 24}
    prepaid = tables["customers"].filter(pl.col("plan_type") == "prepaid")
    assert prepaid["contract_end_date"].null_count() == prepaid.height
    bills = tables["transactions"].filter((pl.col("category") == "bill") & (pl.col("amount") > 0))
    assert bills.join(prepaid, on="customer_id", how="semi").height == 0
    end = datetime(END.year, END.month, END.day)
    start = datetime(START.year, START.month, START.day)
    gaps = (
        bills.join(post, on="customer_id")
        .sort("customer_id", "ts")
        .group_by("customer_id", maintain_order=True)
        .agg(
            pl.col("ts").diff().dt.total_days().max().alias("longest_gap"),
            pl.col("ts").min().alias("first"),
            pl.col("ts").max().alias("last"),
            pl.col("churn_date").first(),
            pl.col("signup_date").first(),
        )
    )
    stayed = gaps.filter(pl.col("churn_date").is_null())
    # everyone a month past signup has been billed (the first bill comes a month in)
    due = post.filter(
        pl.col("churn_date").is_null() & (pl.col("signup_date") < END - timedelta(days=31))
    )
    assert due.join(stayed, on="customer_id", how="anti").height == 0
    assert (stayed["longest_gap"].fill_null(0) <= 31).all()
    assert ((end - stayed["last"]).dt.total_days() <= 31).all()
    first_due = pl.max_horizontal(pl.col("signup_date").cast(pl.Datetime("us")), pl.lit(start))
    assert (stayed.select((pl.col("first") - first_due).dt.total_days() <= 31)).to_series().all()
    left = gaps.filter(pl.col("churn_date").is_not_null())
    assert (left["last"].dt.date() < left["churn_date"]).all()
    fee = bills.join(truth.select("customer_id", "monthly_bill"), on="customer_id")
    ratio = fee["amount"] / fee["monthly_bill"]
    assert ratio.median() == pytest.approx(1.0, abs=0.02)
    assert 0.03 < ratio.std() < 0.15  # the month-to-month noise (8% planted)
    # a quarter of the departures are cut-offs: two bills unpaid before the churn date,
    # the others paid their last bill in the month before they left
    params = json.loads((data / "_truth" / "params.json").read_text())["world"]
    why = left.join(truth.select("customer_id", "involuntary"), on="customer_id").with_columns(
        (pl.col("churn_date").cast(pl.Datetime("us")) - pl.col("last"))
        .dt.total_days()
        .alias("unpaid_days")
    )
    cut = why.filter(pl.col("involuntary"))
    assert cut.height / why.height == pytest.approx(params["involuntary_share"], abs=0.06)
    assert (cut["unpaid_days"] >= params["unpaid_months"] * 30).all()
    assert (why.filter(~pl.col("involuntary"))["unpaid_days"] <= 31).all()


def test_postpaid_device_instalments_and_add_ons(tmp_path: Path) -> None:
    """Planted (off by default: a device plan is a segment of its own, and the persona
    tests expect six), a device plan's instalment comes with each bill of the minimum term
    and stops at its end, postpaid customers buy add-ons now and then, prepaid customers
    have neither; and the truth of value still adds up to what customers then paid."""
    from crm_engine.generator import true_value

    world = WorldParams(device_plan_share=0.3, addon_rate=0.25)
    generate(tmp_path / "d", customers=N, months=24, seed=SEED, start=START, params=world)
    tables = {t: pl.read_parquet(tmp_path / "d" / t) for t in ("customers", "transactions")}
    truth = pl.read_parquet(tmp_path / "d" / "_truth" / "customers.parquet")
    tx = tables["transactions"].filter(pl.col("amount") > 0)
    post = truth.filter(pl.col("monthly_bill").is_not_null())
    device = tx.filter(pl.col("category") == "device").join(truth, on="customer_id")
    assert (device["monthly_bill"].is_not_null()).all()
    assert (device["amount"] == device["device_instalment"]).all()
    assert (device["ts"].dt.date() < device["contract_end_date"]).all()
    with_plan = post.filter(pl.col("device_instalment") > 0)
    assert with_plan.height / post.height == pytest.approx(0.3, abs=0.04)
    per_bill = (
        tx.filter(pl.col("category") == "bill")
        .join(with_plan, on="customer_id")
        .filter(pl.col("ts").dt.date() < pl.col("contract_end_date"))
        .height
    )
    assert device.height == per_bill  # one instalment with every bill of the term
    addons = tx.filter(pl.col("category") == "addon").join(post, on="customer_id")
    billed = tx.filter(pl.col("category") == "bill").join(post, on="customer_id").height
    assert addons.height / billed == pytest.approx(0.25, rel=0.15)
    assert addons["amount"].mean() == pytest.approx(10.0, rel=0.1)
    worth = true_value(tmp_path / "d" / "_truth", date(2024, 1, 1), 366, 1.0, 0.0)
    sums = worth.group_by("plan_type").agg(pl.col("expected_revenue").sum(), pl.col("paid").sum())
    for plan, expected, paid in sums.iter_rows():
        assert expected == pytest.approx(paid, rel=0.05), plan


def test_spend_follows_gamma_gamma(tables: dict[str, pl.DataFrame], truth: pl.DataFrame) -> None:
    prepaid = tables["customers"].filter(pl.col("plan_type") == "prepaid")
    truth = truth.join(prepaid, on="customer_id", how="semi")
    purchases = tables["transactions"].filter(pl.col("amount") > 0)
    per = purchases.group_by("customer_id").agg(pl.col("amount").mean().alias("avg"), pl.len())
    j = per.join(truth, on="customer_id").filter(pl.col("len") >= 10)
    ratio = j["avg"] / (j["gg_p"] / j["nu"])
    assert ratio.median() == pytest.approx(1.0, abs=0.05)
    corr = np.corrcoef(np.log(j["avg"]), np.log(j["gg_p"] / j["nu"]))[0, 1]
    assert corr > 0.9


def test_refunds_reverse_an_earlier_purchase(tables: dict[str, pl.DataFrame]) -> None:
    tx = tables["transactions"]
    refunds = tx.filter(pl.col("amount") < 0)
    assert 0.002 < refunds.height / tx.height < 0.01
    match = refunds.join(
        tx.filter(pl.col("amount") > 0).select(
            "customer_id", (-pl.col("amount")).alias("amount"), pl.col("ts").alias("bought")
        ),
        on=["customer_id", "amount"],
    ).filter(pl.col("bought") < pl.col("ts"))
    assert match["customer_id"].n_unique() == refunds["customer_id"].n_unique()


def test_same_day_purchases_are_rare(tables: dict[str, pl.DataFrame]) -> None:
    p = tables["transactions"].filter(pl.col("amount") > 0)
    days = p.select("customer_id", pl.col("ts").dt.date()).unique().height
    assert days / p.height > 0.93


def _monthly_churn(tables: dict[str, pl.DataFrame], data: Path) -> tuple[float, float, float]:
    """(observed churns, expected churns, variance) over the data months, at-risk customers."""
    c = tables["customers"].select("customer_id", "churn_date")
    hz = (
        pl.read_parquet(data / "_truth" / "churn_hazard.parquet")
        .filter(pl.col("month") < END)
        .join(c, on="customer_id")
        .filter(pl.col("churn_date").is_null() | (pl.col("churn_date") >= pl.col("month")))
    )
    churn_month = pl.col("churn_date").dt.truncate("1mo")
    observed = hz.filter(churn_month == pl.col("month")).height
    h = hz["hazard"]
    return float(observed), float(h.sum()), float((h * (1 - h)).sum())


def test_churn_hazard_truth_matches_observed_churn(
    tables: dict[str, pl.DataFrame], data: Path
) -> None:
    observed, expected, var = _monthly_churn(tables, data)
    assert abs(observed - expected) < 4 * math.sqrt(var)
    hz = pl.read_parquet(data / "_truth" / "churn_hazard.parquet")
    months = hz.filter(pl.col("month") < END)
    assert 0.015 < months["hazard"].mean() < 0.04
    # every customer has hazards up to 12 months past the end; none before it signed up
    assert hz["month"].max() == date(2025, 12, 1)
    last = hz.group_by("customer_id").agg(pl.col("month").max())
    assert (last["month"] == date(2025, 12, 1)).all()
    j = hz.join(tables["customers"], on="customer_id")
    assert (j["month"] > j["signup_date"]).all()
    # churned customers whose churn month was recorded churned in an at-risk month
    churned = tables["customers"].filter(pl.col("churn_date").is_not_null())
    at_risk = churned.join(
        hz,
        left_on=[pl.col("customer_id"), pl.col("churn_date").dt.truncate("1mo")],
        right_on=["customer_id", "month"],
    )
    assert at_risk.height == churned.height


def test_churn_drivers_have_their_known_sign(
    tables: dict[str, pl.DataFrame], truth: pl.DataFrame
) -> None:
    t = truth.with_columns(pl.col("churn_date").is_not_null().alias("churned"))
    worst = t.filter(pl.col("network_badness") > 1.2)["churned"].mean()
    best = t.filter(pl.col("network_badness") < -0.2)["churned"].mean()
    assert worst > 1.5 * best
    rates = t.group_by("persona").agg(pl.col("churned").mean())
    r = dict(zip(rates["persona"], rates["churned"], strict=True))
    assert r["student_prepaid"] > 2 * r["business_high_spender"]


def test_true_churn_probability(tables: dict[str, pl.DataFrame], data: Path) -> None:
    as_of, horizon = date(2024, 7, 1), 92
    p = true_churn_probability(data / "_truth", as_of, horizon)
    c = tables["customers"]
    active = c.filter(
        (pl.col("signup_date") < as_of)
        & (pl.col("churn_date").is_null() | (pl.col("churn_date") > as_of))
    )
    assert p.schema == pl.Schema({"customer_id": pl.Int64, "p_churn": pl.Float64})
    assert p["customer_id"].to_list() == sorted(active["customer_id"].to_list())
    assert p["p_churn"].is_between(0.0, 1.0).all()
    # calibrated: expected churns in the window close to the observed ones
    y = active.select(
        "customer_id",
        pl.col("churn_date")
        .is_between(date(2024, 7, 2), date(2024, 10, 1))
        .fill_null(False)
        .alias("y"),
    ).join(p, on="customer_id")
    sd = math.sqrt((y["p_churn"] * (1 - y["p_churn"])).sum())
    assert abs(y["y"].sum() - y["p_churn"].sum()) < 4 * sd
    # informative: the oracle ranks churners above stayers
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y["y"], y["p_churn"]) > 0.65
    with pytest.raises(ValueError, match="horizon_days=0"):
        true_churn_probability(data / "_truth", as_of, 0)


def test_truth_complaints_are_the_complaints_in_the_data(
    tables: dict[str, pl.DataFrame], data: Path
) -> None:
    stayed = tables["customers"].filter(pl.col("churn_date").is_null()).select("customer_id")
    seen = (
        tables["interactions"]
        .filter(pl.col("kind") == "complaint")
        .join(stayed, on="customer_id")
        .group_by("customer_id", pl.col("opened_at").dt.date().dt.truncate("1mo").alias("month"))
        .agg(pl.len().cast(pl.Int64).alias("complaints"))
        .sort("customer_id", "month")
    )
    truth = (
        pl.read_parquet(data / "_truth" / "complaints.parquet")
        .join(stayed, on="customer_id")
        .sort("customer_id", "month")
    )
    assert seen.height > 500
    assert_frame_equal(truth.select(seen.columns), seen)
    assert 0 < truth["unresolved"].sum() < 0.15 * truth["complaints"].sum()
    graph = pl.read_parquet(data / "_truth" / "call_graph.parquet")
    assert (graph["customer_id"] < graph["contact_id"]).all()
    called = tables["calls"].select(
        pl.min_horizontal("caller_id", "callee_id").alias("customer_id"),
        pl.max_horizontal("caller_id", "callee_id").alias("contact_id"),
    )
    assert called.join(graph, on=["customer_id", "contact_id"], how="anti").height == 0


def _window_labels(tables: dict[str, pl.DataFrame], as_of: date, horizon: int) -> pl.DataFrame:
    last = as_of + timedelta(days=horizon - 1)
    return tables["customers"].select(
        "customer_id", pl.col("churn_date").is_between(as_of, last).fill_null(False).alias("y")
    )


def test_as_of_churn_oracle_ranks_and_is_calibrated(
    tables: dict[str, pl.DataFrame], data: Path
) -> None:
    as_of, horizon = date(2024, 10, 3), 90  # the window ends with the data
    p = as_of_churn_probability(data / "_truth", as_of, horizon)
    c = tables["customers"]
    population = c.filter(
        (pl.col("signup_date") < as_of)
        & (pl.col("churn_date").is_null() | (pl.col("churn_date") >= as_of))
    )
    assert p.schema == pl.Schema({"customer_id": pl.Int64, "p_churn": pl.Float64})
    assert p["customer_id"].to_list() == sorted(population["customer_id"].to_list())
    assert p["p_churn"].is_between(0.0, 1.0).all()
    y = p.join(_window_labels(tables, as_of, horizon), on="customer_id")
    sd = math.sqrt((y["p_churn"] * (1 - y["p_churn"])).sum())
    assert abs(y["y"].sum() - y["p_churn"].sum()) < 4 * sd
    assert roc_auc_score(y["y"], y["p_churn"]) > 0.7
    # the futures it averages over are random, their average barely
    other = as_of_churn_probability(data / "_truth", as_of, horizon, seed=1)
    gap = (other["p_churn"] - p["p_churn"]).abs()
    assert gap.mean() < 0.1 * p["p_churn"].mean() and gap.max() < 0.05, (gap.mean(), gap.max())
    assert (other["p_churn"] != p["p_churn"]).any()
    with pytest.raises(ValueError, match="horizon_days=0"):
        as_of_churn_probability(data / "_truth", as_of, 0)
    with pytest.raises(ValueError, match="ends after the data"):
        as_of_churn_probability(data / "_truth", as_of, 91)


def test_as_of_churn_oracle_never_reads_what_happens_after_the_cut(
    data: Path, tmp_path: Path
) -> None:
    as_of, horizon = date(2024, 10, 3), 90
    expected = as_of_churn_probability(data / "_truth", as_of, horizon, draws=20)
    changed = tmp_path / "data"
    shutil.copytree(data, changed)
    # a flood of complaints after the cut, in the data and in the truth's monthly counts
    inter = pl.read_parquet(changed / "interactions")
    late = inter.filter(pl.col("opened_at") >= datetime(2024, 10, 3))
    assert late.height > 0
    flood = pl.concat([inter, *[late.with_columns(kind=pl.lit("complaint"), closed_at=None)] * 3])
    shutil.rmtree(changed / "interactions")
    (changed / "interactions").mkdir()
    flood.write_parquet(changed / "interactions" / "part-00000.parquet")
    truth = changed / "_truth"
    counts = pl.read_parquet(truth / "complaints.parquet")
    counts.with_columns(
        pl.when(pl.col("month") >= date(2024, 10, 1))
        .then(pl.lit(9, pl.Int64))
        .otherwise(pl.col(c))
        .alias(c)
        for c in ("complaints", "unresolved")
    ).write_parquet(truth / "complaints.parquet")
    # who goes on to leave, and the hazards they really had, are not read either
    customers = pl.read_parquet(truth / "customers.parquet")
    left_later = pl.col("churn_date") >= as_of
    customers.with_columns(
        pl.when(left_later).then(None).otherwise("churn_date").alias("churn_date")
    ).write_parquet(truth / "customers.parquet")
    (truth / "churn_hazard.parquet").unlink()
    assert_frame_equal(as_of_churn_probability(truth, as_of, horizon, draws=20), expected)
    # one complaint before the cut, in the cut's month, does move it
    extra = inter.filter(pl.col("kind") == "complaint").head(1)
    who = extra["customer_id"][0]
    more = pl.concat([flood, extra.with_columns(opened_at=pl.lit(datetime(2024, 10, 2)))])
    more.write_parquet(changed / "interactions" / "part-00000.parquet")
    moved = as_of_churn_probability(truth, as_of, horizon, draws=20)
    diff = moved.join(expected, on="customer_id").filter(
        pl.col("p_churn") != pl.col("p_churn_right")
    )
    assert who in diff["customer_id"].to_list()


def test_as_of_churn_oracle_is_the_generators_hazard(tmp_path: Path) -> None:
    # Without complaints or contagion the hazard of every month is known at the cut: the
    # oracle is then the product of the recorded monthly hazards, with no simulation noise
    # (and with no cut-offs, nothing for the bills to say).
    quiet = ChurnEffects(recent_complaints=0.0, open_unresolved=0.0, contagion=0.0)
    out = tmp_path / "quiet"
    params = WorldParams(churn=quiet, involuntary_share=0.0)
    generate(out, customers=1_500, months=24, seed=3, params=params)
    hazard = pl.read_parquet(out / "_truth" / "churn_hazard.parquet")
    for as_of in (date(2024, 7, 1), date(2024, 7, 11)):
        horizon = (date(2024, 10, 1) - as_of).days
        p = as_of_churn_probability(out / "_truth", as_of, horizon, draws=2)
        expected = _survival(hazard, as_of, date(2024, 10, 1)).join(p, on="customer_id")
        assert expected.height > 0.9 * p.height
        err = (1 - expected["surv"] - expected["p_churn"]).abs().max()
        assert err < 1e-6, (as_of, err)


def test_as_of_churn_oracle_reads_the_bills_paid_before_the_cut(tmp_path: Path) -> None:
    # Every postpaid departure a cut-off two bills after the last one paid: one who missed a
    # bill before the cut leaves in the window for sure; one who paid the bill due last (at
    # b) cannot leave before b + 2 bill periods, so the oracle is the recorded hazards' chance
    # of leaving in the window given no churn before that day (exactly: no simulation noise).
    quiet = ChurnEffects(recent_complaints=0.0, open_unresolved=0.0, contagion=0.0)
    out = tmp_path / "cutoffs"
    params = WorldParams(churn=quiet, involuntary_share=1.0)
    generate(out, customers=4_000, months=24, seed=3, params=params)
    as_of, stop = date(2024, 7, 11), date(2024, 10, 1)
    p = as_of_churn_probability(out / "_truth", as_of, (stop - as_of).days, draws=2)
    truth = pl.read_parquet(out / "_truth" / "customers.parquet")
    cut = datetime.combine(as_of, datetime.min.time())
    period = timedelta(days=365.25 / 12)
    paid = (
        pl.read_parquet(out / "transactions")
        .filter((pl.col("category") == "bill") & (pl.col("amount") > 0) & (pl.col("ts") < cut))
        .group_by("customer_id")
        .agg(pl.len().alias("paid"), pl.col("ts").max().alias("last"))
    )
    due = ((cut - pl.col("first_purchase_at")) / period).ceil().clip(lower_bound=0)
    c = (
        p.join(truth, on="customer_id")
        .join(paid, on="customer_id", how="left")
        .with_columns(
            pl.col("contract_end_date").is_not_null().alias("postpaid"),
            pl.col("paid").fill_null(0),
            pl.col("churn_date").is_between(as_of, stop, closed="left").fill_null(False).alias("y"),
        )
        .with_columns(due=pl.when("postpaid").then(due).otherwise(0))
    )
    hazard = pl.read_parquet(out / "_truth" / "churn_hazard.parquet")
    missed = c.filter(pl.col("paid") < pl.col("due"))
    assert missed.height >= 10
    assert (missed["p_churn"] == 1.0).all() and missed["y"].all()
    # prepaid, and postpaid customers with no bill due yet: the hazards alone
    free = c.filter(pl.col("due") == 0).join(_survival(hazard, as_of, stop), on="customer_id")
    assert free.filter(~pl.col("postpaid")).height > 1_000
    assert (1 - free["surv"] - free["p_churn"]).abs().max() < 1e-6
    # every bill due paid: no churn before the first day after b + 2 periods
    payers = c.filter((pl.col("due") > 0) & (pl.col("paid") == pl.col("due")))
    first_day = (pl.col("last") + 2 * period).dt.date() + timedelta(days=1)
    payers = payers.with_columns(first_day.alias("from"))
    assert payers.height > 1_000 and (payers["from"] < stop).all()
    rows = []
    for day, group in payers.group_by("from"):
        s = _survival(hazard, as_of, day[0]).rename({"surv": "s_from"})
        rows.append(
            group.join(s, on="customer_id").join(_survival(hazard, as_of, stop), on="customer_id")
        )
    both = pl.concat(rows)
    expected = 1 - both["surv"] / both["s_from"]
    assert both.height == payers.height
    assert (expected - both["p_churn"]).abs().max() < 1e-6
    # ... which is below the hazards alone: the bills say a cut-off is not that near
    assert (both["p_churn"] < 1 - both["surv"] - 1e-6).mean() > 0.9


def _survival(hazard: pl.DataFrame, as_of: date, day: date) -> pl.DataFrame:
    """Each customer's chance of no churn in ``[as_of, day)`` from the recorded monthly
    hazards (a churn on a uniform day of its month)."""
    month = pl.col("month")
    length = (month.dt.offset_by("1mo") - month).dt.total_days().cast(pl.Float64)
    lo = pl.max_horizontal(month, pl.lit(as_of))
    hi = pl.min_horizontal(month.dt.offset_by("1mo"), pl.lit(day))
    covered = (hi - lo).dt.total_days().cast(pl.Float64).clip(lower_bound=0)
    before = (lo - month).dt.total_days().cast(pl.Float64)
    h = pl.col("hazard")
    return (
        hazard.filter((month.dt.offset_by("1mo") > as_of) & (month < day))
        .group_by("customer_id")
        .agg((1 - h * covered / (length - h * before)).product().alias("surv"))
    )


def test_params_json(data: Path) -> None:
    params = json.loads((data / "_truth" / "params.json").read_text())
    assert params["start"] == "2023-01-01" and params["end"] == "2025-01-01"
    assert params["seed"] == SEED
    assert set(params["personas"]) == {p.name for p in PERSONAS}
    shares = sum(p["share"] for p in params["personas"].values())
    assert shares == pytest.approx(1.0)
    assert params["churn_effects"]["contagion"] > 0


def test_personas_are_recoverable_from_usage_and_spend(
    tables: dict[str, pl.DataFrame], truth: pl.DataFrame
) -> None:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    usage = (
        tables["usage"]
        .group_by("customer_id")
        .agg(pl.col("data_mb", "voice_min", "sms").mean(), pl.len().alias("months"))
    )
    spend = tables["transactions"].group_by("customer_id").agg(pl.col("amount").sum())
    f = (
        usage.join(spend, on="customer_id", how="left")
        .with_columns((pl.col("amount").fill_null(0).clip(0) / pl.col("months")).alias("spend"))
        .join(truth.select("customer_id", "persona"), on="customer_id")
        .sort("customer_id")
    )
    x = StandardScaler().fit_transform(
        np.log1p(f.select("data_mb", "voice_min", "sms", "spend").to_numpy())
    )
    labels = KMeans(6, n_init=4, random_state=0).fit_predict(x)
    assert adjusted_rand_score(f["persona"], labels) >= 0.7


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="first day of a month"):
        generate(Path("unused"), customers=10, start=date(2023, 1, 5))
    with pytest.raises(ValueError, match="customers=0"):
        generate(Path("unused"), customers=0)


def test_cli_generate_writes_the_tables(tmp_path: Path) -> None:
    from crm_engine.cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--customers",
            "300",
            "--months",
            "6",
            "--seed",
            "1",
            "--out",
            str(out),
            "--start",
            "2024-01-01",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "transactions" in result.output
    for name in INPUT_TABLES:
        assert (out / name / "part-00000.parquet").is_file(), name
    c = pl.read_parquet(out / "customers")
    assert c.height == 300
    tx = pl.read_parquet(out / "transactions")
    assert tx["ts"].max() < datetime(2024, 7, 1)
    bad = CliRunner().invoke(
        app, ["generate", "--customers", "5", "--out", str(tmp_path / "x"), "--start", "2024-01-09"]
    )
    assert bad.exit_code == 1
    assert not (tmp_path / "x").exists()


def test_true_value_is_what_customers_go_on_to_pay(data: Path) -> None:
    """Over a window the data covers, the expected revenue of the truth adds up to what the
    customers then really paid, per plan type; a postpaid customer's value ranks their
    payments; a prepaid purchase process already dead is worth nothing; with no discount and
    a margin of 1 the value is the expected revenue."""
    from crm_engine.generator import true_value

    as_of = date(2024, 1, 1)
    plain = true_value(data / "_truth", as_of, 366, margin=1.0, discount=0.0)
    customers = pl.read_parquet(data / "customers")
    active = customers.filter(
        (pl.col("signup_date") < as_of)
        & (pl.col("churn_date").is_null() | (pl.col("churn_date") >= as_of))
    )
    assert plain["customer_id"].to_list() == sorted(active["customer_id"])
    np.testing.assert_allclose(plain["true_value"], plain["expected_revenue"], rtol=1e-12)
    sums = plain.group_by("plan_type").agg(pl.col("expected_revenue").sum(), pl.col("paid").sum())
    for plan, expected, paid in sums.iter_rows():
        assert expected == pytest.approx(paid, rel=0.05), plan
    post = plain.filter(pl.col("plan_type") == "postpaid")
    assert post.select(pl.corr("true_value", "paid", method="spearman")).item() > 0.9
    dead = plain.filter(~pl.col("alive"))
    assert dead.height > 0 and (dead["plan_type"] == "prepaid").all()
    assert (dead["true_value"] == 0).all()
    assert dead["paid"].sum() <= 0.01 * plain["paid"].sum()  # refunds of earlier purchases
    worth = true_value(data / "_truth", as_of, 366, margin=0.3, discount=0.1)
    ratio = (worth["true_value"] / plain["true_value"]).drop_nans()
    assert ratio.is_between(0.3 / 1.1, 0.3).all()  # a year's discount at most
    with pytest.raises(ValueError, match="past the 12 months recorded"):
        true_value(data / "_truth", END, 400, margin=1.0, discount=0.0)
