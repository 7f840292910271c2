"""Benchmark of the valuation package: BG/NBD + Gamma-Gamma fit and scoring, ours vs lifetimes.

Run ``python -m benchmarks.bench_valuation`` (default sizes 1,000,000 and 10,000,000
customers). BTYD summaries are drawn with numpy from a BG/NBD process in whole days
(``valuation.simulate_bgnbd``: T uniform on 1..730 days, Gamma-Gamma spend in cents), the
same draw for both cases. Each (size, case) runs in its own child process, so each peak RSS
is its own:

- ``ours``: ``BetaGeoModel().fit`` and ``GammaGammaModel().fit`` on distinct triples with
  counts as weights, then scoring: P(alive), expected spend and the discounted CLV over 365
  days (13 monthly horizons);
- ``lifetimes``: plain ``BetaGeoFitter().fit`` / ``GammaGammaFitter().fit`` on the
  uncompressed rows, then P(alive), expected spend and expected purchases at one horizon.
  Killed after ``--timeout`` seconds (default 300) and recorded as a timeout; skipped as a
  predicted timeout when the smaller size already took more than a tenth of it.

``--truth-customers`` (default 100,000) also fits the generated operator and compares the
fitted population rates with the generator's ground truth. Results go to
``benchmarks/results/valuation.md`` (and ``valuation.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent
RESULTS_MD = ROOT / "results" / "valuation.md"
RESULTS_JSON = ROOT / "results" / "valuation.json"
SEED = 1
POPULATION = {"r": 0.8, "alpha": 20.0, "a": 0.9, "b": 3.0}
SPEND = (6.0, 4.0, 15.0)

_CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np
from valuation import simulate_bgnbd, import_lifetimes

case, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pop = json.loads(sys.argv[4]); spend = tuple(json.loads(sys.argv[5]))
sim = simulate_bgnbd(n, seed=seed, spend=spend, **pop)
X = {k: sim[k] for k in ("frequency", "recency", "T", "monetary_value")}
out = {"case": case, "customers": n}
if case == "ours":
    from crm_engine.config import ValuationConfig
    from valuation import BetaGeoModel, GammaGammaModel, ValuationModels, score_arrays
    import_lifetimes()  # as in the lifetimes case: importing it is not fitting
    t0 = time.perf_counter()
    bg = BetaGeoModel().fit(X)
    t1 = time.perf_counter()
    gg = GammaGammaModel().fit(X)
    t2 = time.perf_counter()
    scores = score_arrays(X, ValuationModels(bg, gg), ValuationConfig())
    t3 = time.perf_counter()
    out.update(params=bg.params_, spend_params=gg.params_, triples=bg.n_triples_,
               clv_total=float(scores["clv"].sum()))
else:
    lt = import_lifetimes()
    f, r, T, m = X["frequency"], X["recency"], X["T"], X["monetary_value"]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        bg = lt.BetaGeoFitter().fit(f, r, T)
        t1 = time.perf_counter()
        keep = (f > 0) & (m > 0)
        gg = lt.GammaGammaFitter().fit(f[keep], m[keep])
        t2 = time.perf_counter()
        bg.conditional_probability_alive(f, r, T)
        bg.conditional_expected_number_of_purchases_up_to_time(365, f, r, T)
        gg.conditional_expected_average_profit(f[keep], m[keep])
        t3 = time.perf_counter()
    out.update(params={k: float(v) for k, v in bg.params_.items()},
               spend_params={k: float(v) for k, v in gg.params_.items()})
out.update(bg_fit_s=t1 - t0, gg_fit_s=t2 - t1, fit_s=t2 - t0, score_s=t3 - t2,
           peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
print(json.dumps(out))
"""

_TRUTH = r"""
import datetime as dt, json, sys, time
from pathlib import Path
import polars as pl
import features
from crm_engine.config import ValuationConfig
from crm_engine.generator import generate
from crm_engine.io import load_tables
from valuation import value_customers

n, data = int(sys.argv[1]), Path(sys.argv[2])
if not (data / "_truth" / "customers.parquet").exists():
    generate(data, customers=n, months=24, seed=0)
as_of = dt.date.fromisoformat(sys.argv[3])
profile = features.build_profile(load_tables(data), as_of).collect()
t0 = time.perf_counter()
values, rep = value_customers(profile, ValuationConfig(model="bgnbd"))
secs = time.perf_counter() - t0
truth = pl.read_parquet(data / "_truth" / "customers.parquet")
fitted = profile.filter("has_purchase").select("customer_id").join(truth, on="customer_id")
scored = values.join(fitted, on="customer_id")
alive = scored.filter(pl.col("dropout_date").is_null() | (pl.col("dropout_date") >= as_of))
def rho(fr):
    return fr.select(pl.corr("expected_purchases", "lambda_per_day", method="spearman")).item()
print(json.dumps({
    "customers": n, "fitted": fitted.height, "seconds": secs,
    "fit_purchase_rate": rep.population_rates_per_day["purchase_rate"],
    "true_purchase_rate": fitted["lambda_per_day"].mean(),
    "fit_dropout": rep.population_rates_per_day["dropout"],
    "true_dropout": fitted["p_dropout"].mean(),
    "spearman_all": rho(scored), "spearman_alive": rho(alive),
    "p_alive_alive": alive["p_alive"].mean(),
    "p_alive_dead": scored.join(alive, on="customer_id", how="anti")["p_alive"].mean(),
}))
"""


def run_case(case: str, n: int, timeout: float) -> dict[str, Any]:
    """One (case, size) in a child process; ``{"status": "timeout"}`` when it runs over."""
    cmd = [
        sys.executable,
        "-c",
        _CHILD,
        case,
        str(n),
        str(SEED),
        json.dumps(POPULATION),
        json.dumps(list(SPEND)),
    ]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=True, cwd=ROOT.parent
        )
    except subprocess.TimeoutExpired:
        return {"case": case, "customers": n, "status": f"timeout (> {timeout:.0f} s)"}
    except subprocess.CalledProcessError as e:
        return {"case": case, "customers": n, "status": f"failed: {e.stderr.strip()[-300:]}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["status"] = "ok"
    out["wall_s"] = time.perf_counter() - start
    return out


def run_truth(n: int) -> dict[str, Any]:
    data = ROOT / "data" / f"gen_{n}"
    proc = subprocess.run(
        [sys.executable, "-c", _TRUTH, str(n), str(data), "2025-01-01"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT.parent,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(x: Any, spec: str = ".1f") -> str:
    return format(x, spec) if isinstance(x, int | float) else "-"


def render(results: list[dict[str, Any]], truth: dict[str, Any] | None) -> str:
    lines = [
        "## Valuation (CLV): BG/NBD + Gamma-Gamma, ours (distinct triples) vs plain lifetimes",
        "",
        "`python -m benchmarks.bench_valuation` "
        f"({platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GB). Synthetic BG/NBD summaries in whole "
        f"days (r={POPULATION['r']}, alpha={POPULATION['alpha']}, a={POPULATION['a']}, "
        f"b={POPULATION['b']}, T uniform 1..730, seed {SEED}). Targets: fit on 10M < 30 s; "
        ">= 20x faster than plain lifetimes where it finishes.",
        "",
        "| customers | case | distinct triples | BG/NBD fit s | Gamma-Gamma fit s | fit s "
        "| scoring s | peak RSS GB | fit speed-up | r | alpha | a | b |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(r["customers"], r["case"]): r for r in results}
    for r in results:
        if r.get("status") != "ok":
            lines.append(
                f"| {r['customers']:,} | {r['case']} | | {r['status']} | | | | | | | | | |"
            )
            continue
        other = by.get((r["customers"], "lifetimes"))
        speed = "-"
        if r["case"] == "ours" and other and other.get("status") == "ok":
            speed = f"{other['fit_s'] / r['fit_s']:.1f}x"
        elif r["case"] == "ours" and other:
            speed = "plain did not finish"
        p = r["params"]
        lines.append(
            f"| {r['customers']:,} | {r['case']} | {_fmt(r.get('triples'), ',')} | "
            f"{_fmt(r['bg_fit_s'], '.2f')} | {_fmt(r['gg_fit_s'], '.2f')} | "
            f"{_fmt(r['fit_s'], '.2f')} | "
            f"{_fmt(r['score_s'])} | {_fmt(r['peak_rss_gb'], '.2f')} | {speed} | "
            f"{p['r']:.4f} | {p['alpha']:.3f} | {p['a']:.4f} | {p['b']:.4f} |"
        )
    lines += [
        "",
        "Ours scores the discounted CLV (13 monthly horizons) besides P(alive) and spend; the "
        "plain-lifetimes scoring column computes one horizon. Our BG/NBD and Gamma-Gamma fits "
        "minimise lifetimes' likelihoods with lifetimes' optimiser (BFGS on log-parameters), "
        "over the distinct rows, with each likelihood term evaluated once per distinct "
        "frequency, recency or T and the gradient in closed form (`valuation/likelihood.py`, "
        "checked against lifetimes' function and autograd by a test): about 0.03 s per "
        "evaluation over 574k triples where lifetimes' function with autograd takes 0.11 s. "
        "Above 200k distinct rows the fit starts from a fit on a 50k-customer sample: its "
        "optimum and its inverse Hessian (finite differences of the gradient), so the "
        "full-data BFGS converges in about four evaluations. They skip the Hessian (standard "
        "errors) that lifetimes' `fit` computes.",
    ]
    if truth:
        lines += [
            "",
            f"Ground truth ({truth['customers']:,} generated customers, seed 0, as of "
            f"2025-01-01, {truth['fitted']:,} with a purchase, valuation in "
            f"{truth['seconds']:.1f} s):",
            "",
            "| quantity | fitted | true mean of fitted customers | rel. diff |",
            "|---|---:|---:|---:|",
            f"| E[lambda] per day = r/alpha | {truth['fit_purchase_rate']:.4f} | "
            f"{truth['true_purchase_rate']:.4f} | "
            f"{truth['fit_purchase_rate'] / truth['true_purchase_rate'] - 1:+.1%} |",
            f"| E[p] = a/(a+b) | {truth['fit_dropout']:.5f} | {truth['true_dropout']:.5f} | "
            f"{truth['fit_dropout'] / truth['true_dropout'] - 1:+.1%} |",
            "",
            f"Spearman(expected purchases, true lambda): {truth['spearman_all']:.3f} over all "
            f"fitted customers, {truth['spearman_alive']:.3f} among those still alive in the "
            f"truth; mean P(alive) {truth['p_alive_alive']:.3f} (alive) vs "
            f"{truth['p_alive_dead']:.3f} (dropped out).",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--truth-customers", type=int, default=100_000, help="0 skips the ground-truth comparison"
    )
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    plain_slow = False
    for n in sorted(args.sizes):
        for case in ("ours", "lifetimes"):
            if case == "lifetimes" and plain_slow:
                res = {
                    "case": case,
                    "customers": n,
                    "status": f"skipped: predicted timeout (> {args.timeout:.0f} s)",
                }
            else:
                res = run_case(case, n, args.timeout)
            print(json.dumps(res), flush=True)
            results.append(res)
            if case == "lifetimes" and (
                res.get("status") != "ok" or res["wall_s"] * 10 > args.timeout
            ):
                plain_slow = True
    truth = run_truth(args.truth_customers) if args.truth_customers else None
    if truth:
        print(json.dumps(truth), flush=True)
    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps({"cases": results, "truth": truth}, indent=2) + "\n")
    RESULTS_MD.write_text(render(results, truth))
    print(RESULTS_MD)


if __name__ == "__main__":
    main()
