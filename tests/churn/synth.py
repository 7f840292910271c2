"""Synthetic profile-like frames with a known logistic churn truth (for tests and benchmarks)."""

from __future__ import annotations

import numpy as np
import polars as pl

REGIONS = [f"region_{i:02d}" for i in range(12)]
AGE_BANDS = ["<25", "25-34", "35-49", "50-64", "65+", "unknown"]
OCCUPATIONS = ["student", "employee", "business", "retired", "unknown"]


def make_profile(
    n: int, seed: int, horizon_days: int = 90, id_offset: int = 0, base_logit: float = -2.6
) -> tuple[pl.DataFrame, np.ndarray]:
    """A profile frame at one cut, its churn label and the true churn probability.

    Churn follows a known logistic model of a few columns (with an interaction and a
    categorical effect); loyalty follows an ordered latent score of other columns.

    Returns
    -------
    (frame, true_probability)
        ``frame`` has ``customer_id``, profile columns, ``churned_within_<h>d`` (Boolean),
        ``loyalty_class`` (null for ~50% without survey) and ``next_nps``.
    """
    rng = np.random.default_rng(seed)
    age_band = rng.choice(AGE_BANDS, n, p=[0.12, 0.22, 0.3, 0.2, 0.1, 0.06])
    region = rng.choice(REGIONS, n)
    plan = rng.choice(["prepaid", "postpaid"], n, p=[0.6, 0.4])
    occupation = rng.choice(OCCUPATIONS, n)
    gender = np.where(rng.random(n) < 0.1, None, rng.choice(["f", "m"], n)).astype(object)
    area = rng.choice(["urban", "rural", "unknown"], n, p=[0.6, 0.35, 0.05])
    tenure = rng.integers(30, 3000, n)
    spend = rng.gamma(2.0, 15.0, n)
    trend = np.clip(rng.normal(0, 0.35, n), -1, 1)
    complaints = rng.poisson(0.4, n)
    dropped = rng.beta(2, 60, n)
    data_mb = rng.lognormal(7, 1, n)
    nps_known = rng.random(n) < 0.5
    last_nps = np.where(nps_known, rng.integers(0, 11, n), -1)
    days_pay = np.where(rng.random(n) < 0.05, -1, rng.integers(0, 120, n))

    region_effect = {
        r: e for r, e in zip(REGIONS, np.linspace(-0.5, 0.5, len(REGIONS)), strict=True)
    }
    logit = (
        base_logit
        + 0.9 * (plan == "prepaid")
        - 0.6 * np.log1p(tenure / 365)
        - 1.4 * trend
        + 0.45 * complaints
        + 12.0 * dropped
        + np.vectorize(region_effect.get)(region)
        + 0.012 * np.where(days_pay < 0, 120, days_pay)
        - 0.008 * spend * (plan == "postpaid")
        + np.where(nps_known, -0.15 * (last_nps - 7), 0.0)
    )
    p = 1.0 / (1.0 + np.exp(-logit))
    churned = rng.random(n) < p

    latent = (
        0.6 * np.where(nps_known, last_nps - 7, 0)
        - 0.8 * complaints
        - 25 * dropped
        + 0.5 * (age_band == "65+")
        + rng.logistic(0, 1.0, n)
    )
    loyalty = np.where(latent > 0.6, "promoter", np.where(latent < -1.2, "detractor", "passive"))
    surveyed = rng.random(n) < 0.5
    frame = pl.DataFrame(
        {
            "customer_id": np.arange(id_offset, id_offset + n, dtype=np.int64),
            "age_band": age_band.astype(str),
            "gender": pl.Series(gender.tolist(), dtype=pl.String),
            "occupation": occupation.astype(str),
            "region": region.astype(str),
            "area_type": area.astype(str),
            "plan_type": plan.astype(str),
            "tenure_days": tenure.astype(np.int64),
            "avg_monthly_spend": spend,
            "revenue_90d": spend * 3 * rng.uniform(0.8, 1.2, n),
            "spend_trend": trend,
            "has_purchase": days_pay >= 0,
            "days_since_last_payment": pl.Series(
                np.where(days_pay < 0, None, days_pay).tolist(), dtype=pl.Int64
            ),
            "complaints_90d": complaints.astype(np.int64),
            "dropped_call_rate_mean_3m": dropped,
            "data_mb_3m": data_mb,
            "last_nps": pl.Series(np.where(nps_known, last_nps, None).tolist(), dtype=pl.Int64),
            label_name(horizon_days): churned,
            "loyalty_class": pl.Series(np.where(surveyed, loyalty, None).tolist(), dtype=pl.String),
            "next_nps": pl.Series(np.where(surveyed, 5, None).tolist(), dtype=pl.Int64),
        }
    )
    return frame, p


def label_name(horizon_days: int) -> str:
    return f"churned_within_{horizon_days}d"
