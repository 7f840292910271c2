"""Small synthetic inputs for the valuation tests (fixed seeds)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from valuation import simulate_bgnbd

START = dt.date(2024, 1, 1)


def simulate_transactions(n: int, days: int, seed: int) -> pl.DataFrame:
    """Purchase transactions of ``n`` BG/NBD customers over ``days`` days from ``START``."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(2.0, 1 / 40.0, n)  # mean 0.05 purchases per day
    p = rng.beta(1.0, 20.0, n)
    first = rng.integers(0, days // 2, n)
    rows_c, rows_d = [], []
    for i in range(n):
        t = float(first[i])
        rows_c.append(i + 1)
        rows_d.append(int(t))
        while True:
            t += rng.exponential(1 / lam[i])
            if t >= days:
                break
            rows_c.append(i + 1)
            rows_d.append(int(t))
            if rng.random() < p[i]:
                break
    day = np.asarray(rows_d)
    ts = [dt.datetime.combine(START + dt.timedelta(days=int(d)), dt.time(12)) for d in day]
    amount = np.round(rng.gamma(4.0, 5.0, len(day)), 2)
    amount[rng.random(len(day)) < 0.02] *= -1  # a few refunds, not purchases
    return pl.DataFrame(
        {"customer_id": np.asarray(rows_c, dtype=np.int64), "ts": ts, "amount": amount}
    ).with_columns(pl.col("ts").cast(pl.Datetime("us")))


@pytest.fixture(scope="session")
def transactions() -> pl.DataFrame:
    return simulate_transactions(600, 365, seed=5)


@pytest.fixture(scope="session")
def profile() -> pl.DataFrame:
    """A profile-like frame: 3,000 BG/NBD customers plus 50 without any purchase."""
    sim = simulate_bgnbd(
        3_000, r=0.8, alpha=20.0, a=0.9, b=3.0, max_T=500, seed=2, spend=(6.0, 4.0, 15.0)
    )
    n = len(sim["T"])
    buyers = pl.DataFrame(
        {
            "customer_id": np.arange(1, n + 1, dtype=np.int64),
            "has_purchase": np.ones(n, dtype=bool),
            "frequency": sim["frequency"].astype(np.int64),
            "recency": sim["recency"],
            "T": sim["T"],
            "monetary_value": sim["monetary_value"],
            "tenure_days": sim["T"].astype(np.int64) + 30,
            "revenue_365d": sim["monetary_value"] * sim["frequency"],
            "complaints_365d": np.arange(n, dtype=np.int64) % 3,
            "inquiries_365d": np.ones(n, dtype=np.int64),
        }
    )
    m = 50
    never = pl.DataFrame(
        {
            "customer_id": np.arange(n + 1, n + m + 1, dtype=np.int64),
            "has_purchase": np.zeros(m, dtype=bool),
            "frequency": np.zeros(m, dtype=np.int64),
            "recency": np.zeros(m),
            "T": np.full(m, 99.0),
            "monetary_value": np.zeros(m),
            "tenure_days": np.full(m, 100, dtype=np.int64),
            "revenue_365d": np.zeros(m),
            "complaints_365d": np.zeros(m, dtype=np.int64),
            "inquiries_365d": np.zeros(m, dtype=np.int64),
        }
    )
    return pl.concat([buyers, never])
