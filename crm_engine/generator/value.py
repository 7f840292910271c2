"""The truth of what each generated customer is worth: expected discounted margin from the
generator's own state at ``as_of``, beside what the customer really paid."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from crm_engine.generator.simulate import BILL_DAYS
from crm_engine.io import find_table, scan_raw

_CHUNK = 10_000
"""Customers per block of the day grid (a block holds a few (customers x days) arrays)."""

VALUE_COLUMNS = (
    "customer_id",
    "plan_type",
    "alive",
    "expected_payments",
    "expected_revenue",
    "true_value",
    "paid",
)


def true_value(
    truth_dir: Path,
    as_of: date,
    horizon_days: int,
    margin: float,
    discount: float,
) -> pl.DataFrame:
    """Each customer's true expected discounted margin over ``[as_of, as_of + horizon_days)``.

    Computed from the generator's state at ``as_of``, never from what happened after it:

    - **churn**: the true monthly hazards (``churn_hazard.parquet``; a churn falls on a
      uniform day of its month), so the chance of still being a customer on day ``s`` is
      ``prod (1 - h_k)`` over the months before it times ``1 - h_m x`` the share of its own
      month gone (relative to ``as_of``);
    - **prepaid**: purchases while the purchase process lives: alive at ``as_of`` when it had
      not dropped out (``dropout_date`` on or after ``as_of``, or none), purchases at rate
      ``lambda`` decaying as ``exp(-lambda p s)`` (each purchase ends the process with
      probability ``p``), from the first purchase on, each worth ``gg_p / nu`` on average;
    - **postpaid**: the monthly bill (``monthly_bill`` times the mean of its log-normal noise)
      plus the ``device_instalment`` while the minimum term lasts, on each bill day in the
      window, and add-ons (``addon_rate`` a month of ``addon_mean`` each), paid while the
      customer pays: still there, and for the ``involuntary_share`` of departures that are
      cut-offs, not within ``unpaid_months`` bills of leaving;

    times ``1 - refund_rate`` (refunds), ``margin``, and the discount
    ``(1 + discount) ** (-s / 365.25)`` for a payment ``s`` days after ``as_of``.

    Parameters
    ----------
    truth_dir
        The ``_truth`` directory of :func:`crm_engine.generator.generate`; the tables are its
        parent directory.
    as_of
        First day not observed.
    horizon_days
        Length of the window (> 0); the window must end within the hazards recorded (12
        months past the end of the data).
    margin
        Share of revenue that is margin.
    discount
        Annual discount rate in ``[0, 1)``.

    Returns
    -------
    pl.DataFrame
        One row per customer still a customer at ``as_of`` (signed up before it, no churn
        before it), sorted by ``customer_id``: ``plan_type``, ``alive`` (can still pay: a
        prepaid purchase process not dropped out; every postpaid customer),
        ``expected_payments`` (purchases or bills, undiscounted), ``expected_revenue``
        (undiscounted, no margin: comparable with ``paid``), ``true_value`` (discounted
        margin) and ``paid``: the net amount of the customer's transactions in the window
        (refunds included; only as far as the data reaches).
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days={horizon_days} should be > 0")
    if not 0 <= discount < 1:
        raise ValueError(f"discount={discount} should be in [0, 1)")
    truth_dir = Path(truth_dir)
    params = json.loads((truth_dir / "params.json").read_text())
    world = params["world"]
    refund_keep = 1.0 - float(world["refund_rate"])
    bill_mean = float(np.exp(float(world["bill_noise"]) ** 2 / 2))
    cut_off = float(world["involuntary_share"])
    unpaid = round(float(world["unpaid_months"]) * BILL_DAYS)  # days unpaid before a cut-off
    addon_per_day = float(world["addon_rate"]) * float(world["addon_mean"]) / BILL_DAYS
    start = _midnight(as_of)
    customers = (
        pl.read_parquet(truth_dir / "customers.parquet")
        .filter(
            (pl.col("signup_date") < as_of)
            & (pl.col("churn_date").is_null() | (pl.col("churn_date") >= as_of))
        )
        .sort("customer_id")
    )
    survival = _survival(
        truth_dir, customers.get_column("customer_id"), as_of, horizon_days + unpaid
    )
    s = np.arange(horizon_days, dtype=np.float64) + 0.5  # day midpoints after as_of
    disc = (1.0 + discount) ** (-s / 365.25)
    prepaid = customers.get_column("monthly_bill").is_null().to_numpy()
    first = (
        customers.get_column("first_purchase_at") - start
    ).dt.total_microseconds().to_numpy() / 86_400e6  # days after as_of (negative: before)
    payments = np.zeros(customers.height)
    revenue = np.zeros(customers.height)
    value = np.zeros(customers.height)
    alive = np.ones(customers.height, dtype=bool)
    dropout = customers.get_column("dropout_date")
    alive[prepaid] = (dropout.is_null() | (dropout >= as_of)).to_numpy()[prepaid]

    pre = np.flatnonzero(prepaid & alive)
    lam = customers.get_column("lambda_per_day").to_numpy()
    p = customers.get_column("p_dropout").to_numpy()
    spend = (customers.get_column("gg_p") / customers.get_column("nu")).to_numpy()
    for lo in range(0, pre.size, _CHUNK):
        rows = pre[lo : lo + _CHUNK]
        s0 = np.maximum(first[rows], 0.0)[:, None]
        # purchase intensity per day: a point purchase at a first purchase still to come,
        # then lambda exp(-lambda p (s - s0)) (the process ends after a purchase w.p. p)
        rate = np.where(
            s[None, :] >= s0,
            lam[rows, None] * np.exp(-lam[rows, None] * p[rows, None] * (s[None, :] - s0)),
            0.0,
        )
        later = first[rows] >= 0
        point = np.zeros_like(rate)
        day = np.clip(np.floor(first[rows]).astype(np.int64), 0, horizon_days - 1)
        inside = later & (first[rows] < horizon_days)
        point[np.flatnonzero(inside), day[inside]] = 1.0
        expected = (rate + point) * survival[rows, :horizon_days]
        payments[rows] = expected.sum(axis=1)
        revenue[rows] = payments[rows] * spend[rows] * refund_keep
        value[rows] = (expected * disc).sum(axis=1) * spend[rows] * refund_keep * margin

    post = np.flatnonzero(~prepaid)
    bill = customers.get_column("monthly_bill").fill_null(0.0).to_numpy() * bill_mean
    device = customers.get_column("device_instalment").fill_null(0.0).to_numpy()
    term_end = (
        customers.get_column("contract_end_date").cast(pl.Datetime("us")) - start
    ).dt.total_microseconds().fill_null(0).to_numpy() / 86_400e6  # days after as_of
    for lo in range(0, post.size, _CHUNK):
        rows = post[lo : lo + _CHUNK]
        # bill days first + k BILL_DAYS that fall in the window
        k0 = np.ceil(-first[rows] / BILL_DAYS)
        k = k0[:, None] + np.arange(int(np.ceil(horizon_days / BILL_DAYS)) + 1)[None, :]
        t = first[rows, None] + k * BILL_DAYS
        due = (t >= 0) & (t < horizon_days)
        day = np.clip(np.floor(t).astype(np.int64), 0, horizon_days - 1)
        # pays on day s: still there, or (a cut-off to come) not within `unpaid` of leaving
        pays = (1.0 - cut_off) * survival[rows, :horizon_days] + cut_off * survival[
            rows, unpaid : unpaid + horizon_days
        ]
        surv = np.take_along_axis(pays, day, axis=1) * due
        amount = bill[rows, None] + device[rows, None] * (t < term_end[rows, None])
        payments[rows] = surv.sum(axis=1)
        addons = pays.sum(axis=1) * addon_per_day
        addons_now = (pays * disc).sum(axis=1) * addon_per_day
        revenue[rows] = ((surv * amount).sum(axis=1) + addons) * refund_keep
        value[rows] = ((surv * amount * disc[day]).sum(axis=1) + addons_now) * refund_keep * margin

    paid = _paid(truth_dir.parent, start, start + timedelta(days=horizon_days))
    return (
        customers.select(
            "customer_id",
            pl.Series("plan_type", np.where(prepaid, "prepaid", "postpaid")),
            pl.Series("alive", alive),
            pl.Series("expected_payments", payments),
            pl.Series("expected_revenue", revenue),
            pl.Series("true_value", value),
        )
        .join(paid, on="customer_id", how="left")
        .with_columns(pl.col("paid").fill_null(0.0))
        .select(VALUE_COLUMNS)
    )


def _midnight(day: date) -> datetime:
    """Midnight starting ``day`` (the generator's timestamps are naive)."""
    return datetime.combine(day, time())


def _survival(truth_dir: Path, ids: pl.Series, as_of: date, horizon_days: int) -> np.ndarray:
    """``(customers, horizon_days)``: the chance of still being a customer at the middle of
    each of the ``horizon_days`` days from ``as_of``, given a customer at ``as_of``."""
    end = as_of + timedelta(days=horizon_days)
    first_month = as_of.replace(day=1)
    months = pl.date_range(first_month, end, "1mo", eager=True)
    hazard = (
        pl.scan_parquet(truth_dir / "churn_hazard.parquet")
        .filter(pl.col("month").is_between(months[0], months[-1]))
        .select("customer_id", _months_since(pl.col("month"), first_month).alias("m"), "hazard")
        .join(ids.to_frame().lazy().with_row_index("row"), on="customer_id")
        .collect()
    )
    recorded = hazard.get_column("m").max()
    needed = (end.year - first_month.year) * 12 + end.month - first_month.month
    if ids.len() and (recorded is None or int(recorded) < needed):  # type: ignore[arg-type]
        raise ValueError(
            f"the churn hazards in {truth_dir} end before {end}: the window of {horizon_days} "
            f"days from {as_of} reaches past the 12 months recorded after the data"
        )
    h = np.zeros((ids.len(), needed + 1))
    h[hazard.get_column("row").to_numpy(), hazard.get_column("m").to_numpy()] = hazard.get_column(
        "hazard"
    ).to_numpy()
    # day d of the window (midpoint) lies in month m(d) at share f(d) of it
    days = pl.date_range(as_of, end - timedelta(days=1), "1d", eager=True)
    m = days.to_frame("d").select(_months_since(pl.col("d"), first_month)).to_series().to_numpy()
    length = days.dt.month_end().dt.day().to_numpy().astype(np.float64)
    f = (days.dt.day().to_numpy() - 0.5) / length
    f0 = (as_of.day - 1) / float(length[0])
    # survival to the start of each month, from the start of the window's first month
    start_of = np.cumprod(
        np.concatenate([np.ones((ids.len(), 1)), 1.0 - h[:, :-1]], axis=1), axis=1
    )
    at = start_of[:, m] * (1.0 - h[:, m] * f[None, :])
    return at / (1.0 - h[:, :1] * f0)


def _months_since(day: pl.Expr, first_month: date) -> pl.Expr:
    """Calendar months from ``first_month`` to the month of ``day``."""
    return (day.dt.year() - first_month.year) * 12 + day.dt.month() - first_month.month


def _paid(data_dir: Path, start: datetime, end: datetime) -> pl.DataFrame:
    """Net amount of each customer's transactions in ``[start, end)``."""
    source = find_table(data_dir, "transactions")
    if source is None:
        raise ValueError(f"no transactions table in {data_dir}")
    return (
        scan_raw(source)
        .filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        .group_by("customer_id")
        .agg(pl.col("amount").sum().alias("paid"))
        .collect()
    )
