"""Benchmark of behavioural segmentation: fit on a 200k sample, k search 4..9, assign everyone.

Run ``python -m benchmarks.bench_segmentation`` (default cases: a 1,000,000-row synthetic
profile-like frame and the generated operators ``benchmarks/data/gen_100000`` /
``gen_1000000`` when present). Each case runs in a child process, so the peak RSS is the
segmentation's own (plus reading its input profile); the profile of a generated operator is
built once beforehand and cached in ``benchmarks/data/seg_profile_<N>.parquet`` (not
timed). Results go to ``benchmarks/results/segmentation.md`` (one row per case, replaced
when re-run).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
RESULTS = ROOT / "results" / "segmentation.md"
TARGET_SECONDS = 120.0

HEADER = (
    "| case | customers | k | silhouette | ARI vs personas | fit + k search s | total s | "
    "peak RSS (MiB) | machine | date |"
)

_CHILD = """
import json, resource, sys, time
import polars as pl
from sklearn.metrics import adjusted_rand_score
from crm_engine.config import SegmentationConfig
from segmentation import segment_customers
profile = pl.read_parquet(sys.argv[1])
start = time.perf_counter()
result = segment_customers(profile, SegmentationConfig())
seconds = time.perf_counter() - start
ari = None
if "persona" in profile.columns:
    ari = adjusted_rand_score(profile["persona"].to_numpy(),
                              result.assignments["segment_id"].to_numpy())
chosen = result.report.chosen
print(json.dumps({
    "customers": profile.height, "k": result.model.k_, "silhouette": chosen.silhouette,
    "ari": ari, "fit_seconds": result.report.timings_s["fit"], "seconds": seconds,
    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "names": result.model.segment_names_,
}))
"""

_PROFILE_CHILD = """
import sys
from pathlib import Path
import polars as pl
from crm_engine.io import load_tables
from features import build_profile, default_as_of
data = Path(sys.argv[1])
tables = load_tables(data)
profile = build_profile(tables, default_as_of(tables["transactions"])).collect(engine="streaming")
truth = pl.read_parquet(data / "_truth" / "customers.parquet").select("customer_id", "persona")
profile.join(truth, on="customer_id", how="left").write_parquet(sys.argv[2])
"""

_SYNTHETIC_CHILD = """
import sys
from segmentation.synthetic import synthetic_profile
synthetic_profile(int(sys.argv[1]), seed=0).write_parquet(sys.argv[2])
"""


def _machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return f"{psutil.cpu_count()} cpu, {mem:.0f} GiB, {platform.python_version()}"


def _prepare(case: str, n: int) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    if case == "synthetic":
        path = DATA / f"seg_synthetic_{n}.parquet"
        if not path.exists():
            subprocess.run([sys.executable, "-c", _SYNTHETIC_CHILD, str(n), str(path)], check=True)
        return path
    source = DATA / f"gen_{n}"
    path = DATA / f"seg_profile_{n}.parquet"
    if not path.exists():
        subprocess.run([sys.executable, "-c", _PROFILE_CHILD, str(source), str(path)], check=True)
    return path


def _row(label: str, r: dict[str, object]) -> str:
    ari = "n/a" if r["ari"] is None else f"{r['ari']:.3f}"
    return (
        f"| {label} | {r['customers']:,} | {r['k']} | {r['silhouette']:.3f} | {ari} | "
        f"{r['fit_seconds']:.1f} | {r['seconds']:.1f} | {r['peak_mib']:,.0f} | {_machine()} | "
        f"{date.today().isoformat()} |"
    )


def _write(rows: dict[str, str]) -> None:
    existing: dict[str, str] = {}
    if RESULTS.exists():
        for line in RESULTS.read_text().splitlines():
            if line.startswith("| ") and not line.startswith(("| case", "|---")):
                existing[line.split("|")[1].strip()] = line
    existing.update(rows)
    text = [
        "# Segmentation: behavioural clusters at scale",
        "",
        "`python -m benchmarks.bench_segmentation` (each case in its own child process; "
        "seconds of `segmentation.segment_customers` with the default config: KMeans "
        "(n_init=3) fitted on a 200,000-row sample for every k in 4..9, silhouette on 10,000 "
        "rows per k, then everyone assigned in 200k batches, names, profiles; peak RSS of "
        "that process including the input profile). Cases: `synthetic` = the profile-like "
        "frame of `segmentation.synthetic` with five planted personas; `generated` = the "
        "profile at the default as_of of `benchmarks/data/gen_<N>` (active customers only), "
        "with ARI against the six planted personas of `_truth/customers.parquet`.",
        "",
        f"Target: 1,000,000 customers end to end in under {TARGET_SECONDS:.0f} s.",
        "",
        HEADER,
        "|---|---|---|---|---|---|---|---|---|---|",
        *sorted(existing.values()),
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--synthetic", type=int, default=1_000_000, help="rows of the synthetic case (0 = skip)"
    )
    parser.add_argument(
        "--generated",
        type=int,
        nargs="*",
        default=[100_000, 1_000_000],
        help="sizes of benchmarks/data/gen_<N> to run when present",
    )
    args = parser.parse_args()
    cases: list[tuple[str, str, int]] = []
    if args.synthetic:
        cases.append((f"synthetic {args.synthetic:,}", "synthetic", args.synthetic))
    for n in args.generated:
        if (DATA / f"gen_{n}").is_dir():
            cases.append((f"generated {n:,}", "generated", n))
        else:
            print(f"skip generated {n}: no {DATA / f'gen_{n}'} (run benchmarks.bench_generate)")
    rows: dict[str, str] = {}
    for label, kind, n in cases:
        path = _prepare(kind, n)
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path)], check=True, capture_output=True, text=True
        )
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        rows[label] = _row(label, result)
        print(rows[label], flush=True)
        print("   names:", "; ".join(result["names"]), flush=True)
    _write(rows)
    print(RESULTS)


if __name__ == "__main__":
    main()
