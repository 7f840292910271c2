"""Postpaid value: the contract model (sBG x monthly bill) against BG/NBD on the same customers.

Run ``python -m benchmarks.bench_postpaid`` (default 100,000 generated customers, 24 months,
seed 7). Valuation runs as the pipeline runs it at a cut one year before the end of the data,
once with ``valuation.postpaid_model = "contract"`` and once with ``"btyd"`` (BG/NBD, as
before); each postpaid customer's CLV is compared with what they really paid in the next
``horizon_days`` (365), discounted monthly and times the margin: Spearman rank correlation and
mean absolute error. The fitted 12-month retention of the postpaid customers is compared with
the generator's true hazards at the end of the data. Results go to
``benchmarks/results/postpaid.md`` (and ``postpaid.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import psutil

ROOT = Path(__file__).resolve().parent
RESULTS_MD = ROOT / "results" / "postpaid.md"
RESULTS_JSON = ROOT / "results" / "postpaid.json"


def realised_value(
    transactions: pl.LazyFrame, cut: dt.date, horizon_days: int, margin: float, rate: float
) -> pl.DataFrame:
    """``customer_id, realised``: margin x spend in ``[cut, cut + horizon)``, discounted by
    the 30-day month it falls in (the CLV's own discounting)."""
    from valuation.clv import DAYS_PER_MONTH

    end = cut + dt.timedelta(days=horizon_days)
    day = (pl.col("ts").dt.date() - pl.lit(cut)).dt.total_days()
    month = (day // DAYS_PER_MONTH + 1).cast(pl.Float64)
    return (
        transactions.filter((pl.col("ts").dt.date() >= cut) & (pl.col("ts").dt.date() < end))
        .group_by("customer_id")
        .agg((pl.col("amount") * margin / (1.0 + rate) ** month).sum().alias("realised"))
        .collect()
    )


def bench(customers: int, penalizer: float = 0.0) -> dict[str, Any]:
    from scipy.stats import spearmanr

    from crm_engine.config import ValuationConfig
    from crm_engine.generator import generate, true_churn_probability
    from crm_engine.io import load_tables
    from features import build_profile
    from valuation import run_valuation
    from valuation.clv import DAYS_PER_MONTH, monthly_discount_rate

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate(data, customers=customers, months=24, seed=7)
        tables = load_tables(data)
        end, cut = dt.date(2025, 1, 1), dt.date(2024, 1, 1)
        out: dict[str, Any] = {
            "customers": customers,
            "cut": cut.isoformat(),
            "penalizer": penalizer,
        }
        cache: dict[dt.date, pl.DataFrame] = {}

        def profile_at(at: dt.date, sample: object = None) -> pl.DataFrame:
            if at not in cache:
                cache[at] = build_profile(tables, at).collect()
            return cache[at]

        base = ValuationConfig(penalizer=penalizer)
        rate = monthly_discount_rate(base.annual_discount_rate)
        real = realised_value(tables["transactions"], cut, base.horizon_days, base.margin, rate)
        profile = profile_at(cut)
        postpaid = profile.filter(pl.col("plan_type") == "postpaid").select("customer_id")
        for kind in ("contract", "btyd"):
            cfg = base.model_copy(update={"postpaid_model": kind})
            t0 = time.perf_counter()
            run = run_valuation(
                profile_at, tables["transactions"], cut, cfg, None, tables["customers"]
            )
            seconds = time.perf_counter() - t0
            j = (
                postpaid.join(run.values.select("customer_id", "clv"), on="customer_id")
                .join(real, on="customer_id", how="left")
                .with_columns(pl.col("realised").fill_null(0.0))
            )
            clv, realised = j["clv"].to_numpy(), j["realised"].to_numpy()
            out[kind] = {
                "spearman": float(spearmanr(clv, realised).statistic),
                "mae": float(np.abs(clv - realised).mean()),
                "mean_clv": float(clv.mean()),
                "mean_realised": float(realised.mean()),
                "customers": j.height,
                "seconds": seconds,
            }
        # the retention curve at the end of the data against the generator's hazards
        contract = base.model_copy(update={"postpaid_model": "contract"})
        run = run_valuation(
            profile_at, tables["transactions"], end, contract, None, tables["customers"]
        )
        retention = run.models.retention
        if retention is None:
            raise RuntimeError("no contract retention model was fitted")
        alive = (
            profile_at(end)
            .filter(pl.col("plan_type") == "postpaid")
            .select("customer_id", (pl.col("tenure_days") / DAYS_PER_MONTH).floor().alias("t0"))
        )
        truth = true_churn_probability(data / "_truth", end, 365).join(alive, on="customer_id")
        fitted = retention.retention_ahead(truth["t0"].to_numpy(), 12)[:, -1].mean()
        out["retention_12m"] = {
            "fitted": float(fitted),
            "true": float(1.0 - truth["p_churn"].mean()),
            "customers": truth.height,
            "alpha": retention.alpha,
            "beta": retention.beta,
        }
        return out


def write_results(r: dict[str, Any]) -> None:
    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(r, indent=2))
    cpus = psutil.cpu_count()
    mem = psutil.virtual_memory().total / 2**30
    ret = r["retention_12m"]
    err = ret["fitted"] / ret["true"] - 1
    lines = [
        "## Postpaid value: contract model against BG/NBD",
        "",
        f"`python -m benchmarks.bench_postpaid` ({platform.machine()}, {cpus} cores, "
        f"{mem:.0f} GB). {r['customers']:,} generated customers (seed 7), valued at "
        f"{r['cut']} as the pipeline does (`valuation.penalizer` {r['penalizer']:g}); each "
        "postpaid customer's CLV against what they "
        "really paid in the next 365 days (discounted, times the margin). Target (issue 15): "
        "Spearman >= 0.8 for postpaid and higher than BG/NBD.",
        "",
        "| postpaid valued by | customers | Spearman vs realised | MAE | mean CLV | "
        "mean realised | valuation s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, label in (("contract", "sBG x monthly bill"), ("btyd", "BG/NBD (before)")):
        m = r[kind]
        lines.append(
            f"| {label} | {m['customers']:,} | {m['spearman']:.3f} | {m['mae']:.1f} | "
            f"{m['mean_clv']:.1f} | {m['mean_realised']:.1f} | {m['seconds']:.1f} |"
        )
    lines += [
        "",
        f"Retention over the next 12 months of the {ret['customers']:,} postpaid customers "
        f"at the end of the data: fitted {ret['fitted']:.3f}, true {ret['true']:.3f} "
        f"({err:+.1%}; target within 5%); sBG alpha {ret['alpha']:.3f}, beta {ret['beta']:.2f}.",
    ]
    RESULTS_MD.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--penalizer", type=float, default=0.0, help="valuation.penalizer")
    args = parser.parse_args()
    r = bench(args.customers, args.penalizer)
    print(json.dumps(r, indent=2), flush=True)
    write_results(r)
    print(RESULTS_MD)


if __name__ == "__main__":
    main()
