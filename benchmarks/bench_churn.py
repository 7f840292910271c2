"""Benchmark of the churn package: training at 1M customers, scoring with and without drivers.

Run ``python -m benchmarks.bench_churn`` (default 1,000,000 customers). Training and validation
frames are synthetic profile-like frames with a known logistic churn truth
(``tests/churn/synth.py``: 17 profile columns, 6 categorical); the model uses the default
``ChurnConfig`` (early stopping on half of the later cut, default calibration on it).

Measured: training wall time and peak RSS of the process during the fit (psutil sampling);
scoring throughput in rows/s of the calibrated probability alone, of TreeSHAP drivers for every
row (``drivers_min_probability=0``) and of ``score_customers`` with the default selection.
``--truth-customers`` (default 100,000) also trains on the generated operator and compares the
out-of-time AUC and Brier score with the generator's oracle probabilities.
Results go to ``benchmarks/results/churn.md`` (and ``churn.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import psutil

ROOT = Path(__file__).resolve().parent
RESULTS_MD = ROOT / "results" / "churn.md"
RESULTS_JSON = ROOT / "results" / "churn.json"


class PeakRSS:
    """Samples this process's RSS every 50 ms; ``peak`` in bytes."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def bench_synthetic(n: int, driver_rows: int) -> dict[str, Any]:
    from churn import ChurnModel, score_churn, score_customers
    from crm_engine.config import ChurnConfig
    from tests.churn.synth import make_profile

    t0 = time.perf_counter()
    train, _ = make_profile(n, seed=1)
    valid, _ = make_profile(n, seed=2, id_offset=n)
    t_data = time.perf_counter() - t0
    cfg = ChurnConfig()
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        model = ChurnModel(
            horizon_days=cfg.horizon_days,
            lgbm_params=cfg.lightgbm.model_dump(),
            early_stopping_rounds=cfg.early_stopping_rounds,
            calibration=cfg.calibration,
        ).fit(train, valid)
        t_fit = time.perf_counter() - t0
    profile = valid.drop("churned_within_90d", "loyalty_class", "next_nps")
    t0 = time.perf_counter()
    model.predict_churn(profile)
    t_prob = time.perf_counter() - t0
    sub = profile.head(driver_rows)
    t0 = time.perf_counter()
    score_churn(sub, model, cfg.model_copy(update={"drivers_min_probability": 0.0}))
    t_drv = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = score_customers(profile, model, None, cfg)
    t_default = time.perf_counter() - t0
    explained = int((out["churn_drivers"].list.len() > 0).sum())
    return {
        "customers": n,
        "data_seconds": t_data,
        "fit_seconds": t_fit,
        "peak_rss_gb": rss.peak / 1e9,
        "best_iteration": model.best_iteration_,
        "n_features": model.n_features_in_,
        "oot_roc_auc": model.metrics_["roc_auc"],
        "score_rows_per_s_no_drivers": n / t_prob,
        "driver_rows": sub.height,
        "score_rows_per_s_all_drivers": sub.height / t_drv,
        "default_score_seconds": t_default,
        "default_explained": explained,
        "default_rows_per_s": n / t_default,
    }


def bench_truth(customers: int) -> dict[str, Any]:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from churn.frames import build_training_frames
    from churn.model import validation_halves
    from churn.training import train_models
    from crm_engine.config import PipelineConfig
    from crm_engine.generator import generate, true_churn_probability
    from crm_engine.io import load_tables

    as_of, h = dt.date(2025, 1, 1), 90
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate(data, customers=customers, months=24, seed=7)
        tables = load_tables(data)
        cfg = PipelineConfig()
        t0 = time.perf_counter()
        training = train_models(tables, as_of, cfg, h)
        t_fit = time.perf_counter() - t0
        _, valid = build_training_frames(tables, as_of, cfg.features, cfg.churn.extra_features, h)
        _, report = validation_halves(valid, training.churn.seed)
        rep = valid.filter(pl.Series(report)).select("customer_id", f"churned_within_{h}d")
        truth = true_churn_probability(data / "_truth", training.valid_cut, h)
        j = rep.join(truth, on="customer_id", how="inner")
        y = j[f"churned_within_{h}d"].to_numpy()
        p = j["p_churn"].to_numpy()
        m, lm = training.churn.metrics_, training.loyalty.metrics_ if training.loyalty else {}
        return {
            "customers": customers,
            "fit_seconds_incl_profiles": t_fit,
            "report_rows": int(m["n"]),
            "base_rate": m["base_rate"],
            "model_auc": m["roc_auc"],
            "oracle_auc": float(roc_auc_score(y, p)),
            "model_brier": m["brier"],
            "oracle_brier": float(brier_score_loss(y, p)),
            "lift_top_decile": m["lift_top_decile"],
            "capture_top_decile": m["capture_top_decile"],
            "loyalty": {
                k: lm.get(k, float("nan"))
                for k in ("auc_promoter", "auc_passive", "auc_detractor", "log_loss")
            },
            "top_features": training.importance.head(5)["feature"].to_list(),
        }


def write_results(syn: dict[str, Any], truth: dict[str, Any] | None) -> None:
    from crm_engine.config import ChurnConfig

    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps({"synthetic": syn, "truth": truth}, indent=2))
    cpus = psutil.cpu_count()
    mem = psutil.virtual_memory().total / 2**30
    lines = [
        "## Churn: LightGBM training and scoring",
        "",
        f"`python -m benchmarks.bench_churn` ({platform.machine()}, {cpus} cores, "
        f"{mem:.0f} GB). Synthetic profile-like frames with a known logistic truth "
        f"({syn['n_features']} features, 6 categorical), default `ChurnConfig` (depth 3, "
        "7 leaves, early stopping on half of the later cut, "
        f"{ChurnConfig().calibration} calibration on it).",
        "",
        "| customers (train + valid) | fit s | trees | peak RSS GB | scoring rows/s, no drivers "
        "| rows/s, drivers for every row | `score_customers` default s (explained) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {syn['customers']:,} + {syn['customers']:,} | {syn['fit_seconds']:.1f} | "
        f"{syn['best_iteration']} | {syn['peak_rss_gb']:.2f} | "
        f"{syn['score_rows_per_s_no_drivers']:,.0f} | "
        f"{syn['score_rows_per_s_all_drivers']:,.0f} (on {syn['driver_rows']:,}) | "
        f"{syn['default_score_seconds']:.1f} ({syn['default_explained']:,}) |",
        "",
        "Drivers (TreeSHAP `pred_contrib`) are computed only for customers at or above "
        "`drivers_min_probability` or in the top `drivers_top_n` by value at risk; the last "
        "column scores everyone with that default selection.",
    ]
    if truth:
        lo = truth["loyalty"]
        lines += [
            "",
            f"Ground truth ({truth['customers']:,} generated customers, seed 7, as of 2025-01-01, "
            f"horizon 90 days; training cut 2024-07-05, validation cut 2024-10-03; metrics on "
            f"the {truth['report_rows']:,} report-half customers, churn rate "
            f"{truth['base_rate']:.3f}; training incl. both profiles "
            f"{truth['fit_seconds_incl_profiles']:.1f} s):",
            "",
            "| | ROC-AUC | Brier |",
            "|---|---:|---:|",
            f"| model (out of time, calibrated) | {truth['model_auc']:.4f} | "
            f"{truth['model_brier']:.5f} |",
            f"| oracle (true probabilities) | {truth['oracle_auc']:.4f} | "
            f"{truth['oracle_brier']:.5f} |",
            "",
            f"Top-decile lift {truth['lift_top_decile']:.2f}, capture "
            f"{truth['capture_top_decile']:.1%}. Loyalty one-vs-rest AUC: promoter "
            f"{lo['auc_promoter']:.3f}, passive {lo['auc_passive']:.3f}, detractor "
            f"{lo['auc_detractor']:.3f} (log-loss {lo['log_loss']:.3f}). Top churn features: "
            f"{', '.join(truth['top_features'])}.",
        ]
    RESULTS_MD.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--driver-rows", type=int, default=50_000)
    parser.add_argument("--truth-customers", type=int, default=100_000)
    args = parser.parse_args()
    syn = bench_synthetic(args.customers, args.driver_rows)
    print(json.dumps(syn, indent=2), flush=True)
    truth = bench_truth(args.truth_customers) if args.truth_customers > 0 else None
    print(json.dumps(truth, indent=2), flush=True)
    write_results(syn, truth)
    print(RESULTS_MD)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
