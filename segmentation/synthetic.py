"""Profile-like frames with planted personas, for tests, examples and benchmarks (no real rows)."""

from __future__ import annotations

import numpy as np
import polars as pl

from crm_engine.config import FeaturesConfig, age_band_labels

#: Planted personas: log-scale means of the heavy-tailed features, plain means elsewhere,
#: and the categorical mix. Deliberately separated so recovery can be checked.
PERSONAS: dict[str, dict[str, object]] = {
    "urban_streamer": {
        "spend": 5.6, "data": 9.6, "voice": 4.6, "sms": 2.0, "age": 24, "tenure": 500,
        "drop": 0.010, "mbps": 60.0, "lat": 30.0, "complaints": 0.3,
        "occupation": {"student": 0.6, "professional": 0.4},
        "area_urban": 0.95, "postpaid": 0.4,
    },
    "rural_voice_senior": {
        "spend": 5.2, "data": 5.5, "voice": 6.6, "sms": 3.0, "age": 68, "tenure": 2500,
        "drop": 0.040, "mbps": 8.0, "lat": 90.0, "complaints": 1.5,
        "occupation": {"retired": 0.9, "manual": 0.1},
        "area_urban": 0.1, "postpaid": 0.3,
    },
    "business": {
        "spend": 7.0, "data": 8.4, "voice": 6.9, "sms": 2.5, "age": 44, "tenure": 1800,
        "drop": 0.012, "mbps": 45.0, "lat": 35.0, "complaints": 0.6,
        "occupation": {"business": 0.8, "professional": 0.2},
        "area_urban": 0.85, "postpaid": 0.95,
    },
    "budget_prepaid": {
        "spend": 4.0, "data": 6.5, "voice": 4.2, "sms": 4.2, "age": 36, "tenure": 300,
        "drop": 0.020, "mbps": 25.0, "lat": 50.0, "complaints": 0.2,
        "occupation": {"manual": 0.5, "unemployed": 0.3, "student": 0.2},
        "area_urban": 0.55, "postpaid": 0.05,
    },
    "family": {
        "spend": 6.2, "data": 7.8, "voice": 5.6, "sms": 4.8, "age": 40, "tenure": 1200,
        "drop": 0.018, "mbps": 30.0, "lat": 45.0, "complaints": 0.8,
        "occupation": {"family": 0.7, "office": 0.3},
        "area_urban": 0.6, "postpaid": 0.7,
    },
}  # fmt: skip


def synthetic_profile(
    n: int,
    seed: int = 0,
    personas: tuple[str, ...] | None = None,
    id_offset: int = 0,
) -> pl.DataFrame:
    """A profile-like frame with the default segmentation columns and a ``persona`` column.

    Parameters
    ----------
    n
        Customers.
    seed
        Random seed (same seed, same frame).
    personas
        Subset of :data:`PERSONAS` to plant (default all, equal shares).
    id_offset
        First ``customer_id``.
    """
    rng = np.random.default_rng(seed)
    names = list(personas or PERSONAS)
    which = rng.integers(0, len(names), size=n)
    cols: dict[str, np.ndarray] = {}

    def per(key: str) -> np.ndarray:
        return np.array([float(PERSONAS[p][key]) for p in names])[which]  # type: ignore[arg-type]

    def lognormal(key: str, sd: float) -> np.ndarray:
        return np.expm1(np.clip(rng.normal(per(key), sd), 0, None))

    revenue = lognormal("spend", 0.35)
    cols["revenue_365d"] = revenue
    cols["avg_monthly_spend"] = revenue / 12 * rng.uniform(0.9, 1.1, n)
    freq = rng.poisson(np.clip(revenue / 40, 0.5, None)).astype(np.int64)
    cols["frequency"] = freq
    cols["monetary_value"] = np.where(freq > 0, revenue / np.maximum(freq, 1), 0.0)
    cols["data_mb_12m"] = lognormal("data", 0.4)
    cols["voice_min_12m"] = lognormal("voice", 0.35)
    cols["sms_12m"] = lognormal("sms", 0.5)
    cols["dropped_call_rate_mean_3m"] = np.clip(rng.normal(per("drop"), 0.005), 0, 1)
    cols["avg_download_mbps_mean_3m"] = np.clip(
        rng.normal(per("mbps"), per("mbps") * 0.2), 0.5, None
    )
    cols["latency_ms_mean_3m"] = np.clip(rng.normal(per("lat"), 8), 5, None)
    cols["complaints_365d"] = rng.poisson(per("complaints")).astype(np.int64)
    cols["tenure_days"] = np.clip(rng.normal(per("tenure"), per("tenure") * 0.3), 1, None).astype(
        np.int64
    )
    age = np.clip(rng.normal(per("age"), 5), 18, 95).astype(np.int64)

    occupation = np.empty(n, dtype=object)
    area = np.empty(n, dtype=object)
    plan = np.empty(n, dtype=object)
    for i, p in enumerate(names):
        mask = which == i
        m = int(mask.sum())
        occ: dict[str, float] = PERSONAS[p]["occupation"]  # type: ignore[assignment]
        occupation[mask] = rng.choice(list(occ), size=m, p=list(occ.values()))
        urban = float(PERSONAS[p]["area_urban"])  # type: ignore[arg-type]
        area[mask] = np.where(rng.random(m) < urban, "urban", "rural")
        post = float(PERSONAS[p]["postpaid"])  # type: ignore[arg-type]
        plan[mask] = np.where(rng.random(m) < post, "postpaid", "prepaid")
    regions = np.array(["north", "south", "east", "west", "capital"])
    region = regions[rng.integers(0, len(regions), n)]

    # realistic gaps: some ages and occupations unknown
    age_missing = rng.random(n) < 0.05
    occ_missing = rng.random(n) < 0.03
    occupation[occ_missing] = None
    cuts = FeaturesConfig().age_bands
    bands = age_band_labels(cuts)
    age_band = np.select([age < c for c in cuts], bands[:-1], bands[-1]).astype(object)
    age_band[age_missing] = "unknown"

    return pl.DataFrame(
        {
            "customer_id": np.arange(id_offset, id_offset + n, dtype=np.int64),
            **cols,
            "age": pl.Series(age).scatter(np.flatnonzero(age_missing), None),
            "age_band": age_band.tolist(),
            "occupation": occupation.tolist(),
            "region": region.tolist(),
            "area_type": area.tolist(),
            "plan_type": plan.tolist(),
            "persona": np.asarray(names, dtype=object)[which].tolist(),
        },
        schema_overrides={
            "age_band": pl.String,
            "occupation": pl.String,
            "region": pl.String,
            "area_type": pl.String,
            "plan_type": pl.String,
            "persona": pl.String,
        },
    )
