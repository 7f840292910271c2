"""A hand-built tiny dataset with every table, dated around 2024-01-01."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from crm_engine.contracts import INPUT_TABLES

D = dt.date
T = dt.datetime
AS_OF = D(2024, 1, 1)


def frame(table: str, rows: list[tuple]) -> pl.DataFrame:
    """Rows in contract column order, typed by the table's contract; optional trailing
    columns a row leaves out are null (a file written before they were added)."""
    schema = INPUT_TABLES[table].polars_schema()
    width = len(schema)
    return pl.DataFrame(
        [(*r, *[None] * (width - len(r))) for r in rows], schema=schema, orient="row"
    )


def tiny_frames() -> dict[str, pl.DataFrame]:
    """Every table, with rows before, on and after ``AS_OF`` (see test_profile for the sums)."""
    customers = frame(
        "customers",
        [
            (1, D(2020, 1, 1), D(1990, 5, 20), "f", "engineer", "north", "urban", "prepaid", None),
            (2, D(2023, 6, 10), None, None, " ", "south", None, "postpaid", None),
            (3, D(2024, 3, 1), D(2000, 1, 1), "m", "student", "north", "rural", "prepaid", None),
            (
                4,
                D(2021, 1, 1),
                D(1950, 1, 1),
                "f",
                "retired",
                "east",
                "urban",
                "prepaid",
                D(2023, 12, 1),
            ),
            (
                5,
                D(2022, 1, 1),
                D(1980, 1, 1),
                "m",
                "farmer",
                "north",
                "rural",
                "postpaid",
                D(2024, 1, 1),
            ),
            (6, D(2024, 1, 1), D(1985, 1, 1), "m", "farmer", "west", "rural", "postpaid", None),
        ],
    )
    transactions = frame(
        "transactions",
        [
            (1, T(2023, 1, 5, 10), 10.0, "topup", "app"),
            (1, T(2023, 8, 1, 12), 16.0, "device", "store"),
            (1, T(2023, 11, 5, 9), 5.0, "bill", "online"),
            (1, T(2023, 11, 5, 18), 7.0, "bill", "online"),
            (1, T(2023, 12, 20), -3.0, "topup", "app"),
            (1, T(2023, 12, 28, 23, 59), 4.0, "addon", "app"),
            (1, T(2024, 1, 1), 100.0, "device", "store"),
            (5, T(2023, 12, 31, 23, 59, 59), 1.0, None, None),
            (3, T(2024, 3, 5), 50.0, "topup", "app"),
        ],
    )
    usage = frame(
        "usage",
        [
            (1, D(2023, 12, 1), 300.0, 30.0, 3.0),
            (1, D(2023, 11, 1), 200.0, 20.0, 2.0),
            (1, D(2023, 10, 1), 100.0, 10.0, 1.0),
            (1, D(2023, 8, 1), 100.0, 40.0, 0.0),
            (1, D(2023, 7, 1), 0.0, 0.0, 0.0),
            (1, D(2024, 1, 1), 999.0, 999.0, 999.0),
            (5, D(2022, 12, 1), 50.0, 50.0, 50.0),
        ],
    )
    network = frame(
        "network",
        [
            (1, D(2023, 10, 1), 0.01, 0.99, 50.0, 30.0, 0.1, 0.5),
            (1, D(2023, 11, 1), 0.03, 0.95, 20.0, 60.0, 0.5, 0.2),
            (1, D(2023, 12, 1), 0.02, 0.97, 35.0, None, 0.3, 0.4),
            (1, D(2023, 9, 1), 0.5, 0.5, 1.0, 500.0, 5.0, 0.0),
            (1, D(2024, 1, 1), 0.9, 0.1, 0.1, 900.0, 9.0, 0.0),
        ],
    )
    interactions = frame(
        "interactions",
        [
            (1, T(2023, 12, 10, 8), T(2023, 12, 11, 20), "phone", "complaint", "network", 2),
            (1, T(2023, 6, 1, 8), T(2023, 6, 1, 20), "app", "complaint", "roaming", 4),
            (1, T(2023, 12, 30, 10), T(2024, 1, 2), "store", "inquiry", "billing", 5),
            (1, T(2022, 6, 1), T(2022, 6, 2), "phone", "complaint", "billing", 1),
            (1, T(2024, 1, 5), None, "phone", "complaint", "network", None),
            (5, T(2023, 12, 1), None, "app", "request", None, None),
        ],
    )
    surveys = frame(
        "surveys",
        [
            (1, T(2023, 3, 1), 3, 2),
            (1, T(2023, 9, 15, 10), 8, 4),
            (1, T(2024, 1, 10), 10, 5),
            (1, T(2024, 5, 1), 0, 1),
            (5, T(2024, 2, 15), 5, None),
            (2, T(2024, 4, 15), 9, 5),
        ],
    )
    calls = frame(
        "calls",
        [
            (1, 2, D(2023, 11, 1), 3, 10.0),
            (2, 1, D(2023, 12, 1), 2, 5.0),
            (1, 4, D(2023, 6, 1), 1, 2.0),
            (1, 1, D(2023, 12, 1), 9, 90.0),
            (5, 99, D(2023, 12, 1), 1, 1.0),
            (1, 2, D(2022, 12, 1), 5, 50.0),
            (2, 5, D(2024, 1, 1), 5, 50.0),
        ],
    )
    return {
        "customers": customers,
        "transactions": transactions,
        "usage": usage,
        "network": network,
        "interactions": interactions,
        "surveys": surveys,
        "calls": calls,
    }


def lazy(frames: dict[str, pl.DataFrame]) -> dict[str, pl.LazyFrame]:
    return {name: df.lazy() for name, df in frames.items()}


def random_frames(seed: int, n: int = 30, first_id: int = 1000) -> dict[str, pl.DataFrame]:
    """A seeded random dataset of ``n`` customers with rows from 2022-01 to 2024-12."""
    rng = np.random.default_rng(seed)
    ids = np.arange(first_id, first_id + n)
    start = np.datetime64("2022-01-01")
    span = 3 * 365

    def days(k: int, lo: int = 0, hi: int = span) -> np.ndarray:
        return start + rng.integers(lo, hi, k).astype("timedelta64[D]")

    def stamps(k: int) -> np.ndarray:
        return days(k).astype("datetime64[us]") + rng.integers(0, 86_400_000_000, k).astype(
            "timedelta64[us]"
        )

    def months(k: int) -> np.ndarray:
        return (np.datetime64("2022-01") + rng.integers(0, 36, k).astype("timedelta64[M]")).astype(
            "datetime64[D]"
        )

    signup = days(n, 0, span - 200)
    churn = np.where(rng.random(n) < 0.4, signup + rng.integers(30, 700, n), np.datetime64("NaT"))
    customers = pl.DataFrame(
        {
            "customer_id": ids,
            "signup_date": signup,
            "birth_date": np.where(rng.random(n) < 0.8, days(n) - 365 * 40, np.datetime64("NaT")),
            "gender": rng.choice(["f", "m"], n),
            "occupation": rng.choice(["office", "family", "student"], n),
            "region": rng.choice(["north", "south"], n),
            "area_type": rng.choice(["urban", "rural"], n),
            "plan_type": rng.choice(["prepaid", "postpaid"], n),
            "churn_date": churn,
        }
    ).with_columns(
        # A one- or two-year term for postpaid customers; prepaid have none.
        contract_end_date=pl.when(pl.col("plan_type") == "postpaid").then(
            pl.col("signup_date").dt.offset_by(
                pl.when(pl.col("customer_id") % 2 == 0).then(pl.lit("1y")).otherwise(pl.lit("2y"))
            )
        )
    )
    k = 20 * n
    transactions = pl.DataFrame(
        {
            "customer_id": rng.choice(ids, k),
            "ts": stamps(k),
            "amount": np.round(rng.normal(20, 15, k), 2),
            "category": rng.choice(["topup", "bill", "addon", "device", "gift"], k),
            "channel": rng.choice(["app", "store"], k),
        }
    )
    k = 12 * n
    usage = pl.DataFrame(
        {
            "customer_id": rng.choice(ids, k),
            "month": months(k),
            "data_mb": rng.choice([0.0, 100.0, 2500.0], k),
            "voice_min": rng.choice([0.0, 30.0, 300.0], k),
            "sms": rng.choice([0.0, 5.0], k),
        }
    ).unique(["customer_id", "month"])
    network = pl.DataFrame(
        {
            "customer_id": rng.choice(ids, k),
            "month": months(k),
            **{
                kpi: np.round(rng.random(k) * scale, 3)
                for kpi, scale in (
                    ("dropped_call_rate", 0.1),
                    ("call_setup_success_rate", 1.0),
                    ("avg_download_mbps", 100.0),
                    ("latency_ms", 120.0),
                    ("packet_loss_pct", 3.0),
                    ("coverage_5g_share", 1.0),
                )
            },
        }
    ).unique(["customer_id", "month"])
    k = 3 * n
    opened = stamps(k)
    closed = opened + rng.integers(1, 400, k).astype("timedelta64[h]")
    interactions = pl.DataFrame(
        {
            "customer_id": rng.choice(ids, k),
            "opened_at": opened,
            "closed_at": np.where(rng.random(k) < 0.8, closed, np.datetime64("NaT")),
            "channel": rng.choice(["app", "phone"], k),
            "kind": rng.choice(["complaint", "inquiry", "request"], k),
            "topic": rng.choice(["network", "billing", "device", "roaming"], k),
            "satisfaction": rng.integers(1, 6, k),
        }
    )
    surveys = pl.DataFrame(
        {
            "customer_id": rng.choice(ids, k),
            "answered_at": stamps(k),
            "nps": rng.integers(0, 11, k),
            "csat": rng.integers(1, 6, k),
        }
    )
    k = 6 * n
    calls = pl.DataFrame(
        {
            "caller_id": rng.choice(ids, k),
            "callee_id": rng.choice(np.append(ids, [9_999_999]), k),
            "month": months(k),
            "n_calls": rng.integers(1, 20, k),
            "minutes": np.round(rng.random(k) * 100, 1),
        }
    )
    frames = {
        "customers": customers,
        "transactions": transactions,
        "usage": usage,
        "network": network,
        "interactions": interactions,
        "surveys": surveys,
        "calls": calls,
    }
    return {
        name: df.select(pl.col(c).cast(t) for c, t in INPUT_TABLES[name].polars_schema().items())
        for name, df in frames.items()
    }
