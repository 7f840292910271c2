"""Benchmark of the features package: full profile and BTYD summary against their baselines.

Run ``python -m benchmarks.bench_features --customers 100000``. On generated data
(``benchmarks/data/gen_<N>``, generated with 24 months and seed 0 only if missing) it times,
each in its own child process so that each peak RSS is its own:

- ``profile``: ``features.build_profile`` over every table, streamed to a Parquet file;
- ``btyd``: ``features.btyd_summary`` alone (collected);
- ``lifetimes``: ``lifetimes.utils.summary_data_from_transaction_data`` via pandas on the same
  purchase rows (time of the lifetimes call; reading the rows into pandas is reported apart);
- ``scan``: a bare Polars scan of the transaction columns the profile reads (collected);
- ``scan_all``: a bare Polars scan of every column of all seven tables, one after the other
  (collected): what the profile must read at the least.

Results are kept per (N, case) in ``benchmarks/results/features.json`` and rendered to
``benchmarks/results/features.md`` with the targets (at 1M customers: BTYD >= 20x faster than
lifetimes, full profile within 4x of the scan, peak memory < 6 GB).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent
RESULTS_MD = ROOT / "results" / "features.md"
RESULTS_JSON = ROOT / "results" / "features.json"
CASES = ("profile", "btyd", "lifetimes", "scan", "scan_all")
MONTHS = 24
SEED = 0

_CHILD = r"""
import datetime as dt, json, resource, sys, time, warnings
from pathlib import Path
import polars as pl
import features
from crm_engine.io import load_tables

case, data_dir, out = sys.argv[1], Path(sys.argv[2]), sys.argv[4]
as_of = dt.date.fromisoformat(sys.argv[3])
tables = load_tables(data_dir)
extra = {}
start = time.perf_counter()
if case == "profile":
    from crm_engine.io import sink_parquet
    rows = sink_parquet(features.build_profile(tables, as_of), Path(out))
elif case == "btyd":
    rows = features.btyd_summary(tables["transactions"], as_of).collect(engine="streaming").height
elif case == "scan":
    rows = tables["transactions"].select("customer_id", "ts", "amount", "category").collect(
        engine="streaming").height
elif case == "scan_all":
    rows = 0
    for lf in tables.values():
        rows += lf.collect(engine="streaming").height
elif case == "lifetimes":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes.utils import summary_data_from_transaction_data
    import pandas as pd
    purchases = (
        features.observed(tables["transactions"], "transactions", as_of)
        .filter(pl.col("amount") > 0)
        .select("customer_id", "ts", "amount")
        .collect(engine="streaming")
        .to_pandas()
    )
    extra["load_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = summary_data_from_transaction_data(
            purchases, "customer_id", "ts", monetary_value_col="amount", freq="D",
            observation_period_end=pd.Timestamp(as_of - dt.timedelta(days=1)))
    rows = len(summary)
else:
    raise SystemExit(f"unknown case {case}")
seconds = time.perf_counter() - start
# VmHWM: this process's own high-water mark (ru_maxrss survives exec from the parent).
hwm = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM")]
kib = int(hwm[0].split()[1]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
peak = kib / 1024
print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_mib": peak, **extra}))
"""


def ensure_data(customers: int) -> Path:
    """``benchmarks/data/gen_<N>``, generated (24 months, seed 0) only when missing."""
    out = ROOT / "data" / f"gen_{customers}"
    if not (out / "transactions").exists():
        from crm_engine.generator import generate

        generate(out, customers=customers, months=MONTHS, seed=SEED)
    return out


def run_case(case: str, data_dir: Path, as_of: dt.date, timeout: float) -> dict[str, object]:
    """Run one case in a child process; a run over ``timeout`` seconds is recorded as such."""
    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp:
        cmd = [
            sys.executable,
            "-c",
            _CHILD,
            case,
            str(data_dir),
            as_of.isoformat(),
            str(Path(tmp) / "profiles.parquet"),
        ]
        try:
            proc = subprocess.run(
                cmd, check=True, capture_output=True, text=True, timeout=timeout, cwd=ROOT.parent
            )
        except subprocess.TimeoutExpired:
            return {"timeout": True, "seconds": timeout}
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"case {case} failed:\n{e.stderr[-3000:]}") from None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cpu, {mem:.0f} GiB, {platform.python_version()}"


def _fmt_seconds(r: dict[str, object] | None) -> str:
    if r is None:
        return "-"
    if r.get("timeout"):
        return f"timeout (> {float(r['seconds']):.0f})"
    return f"{float(r['seconds']):.2f}"


def _fmt_rss(r: dict[str, object] | None) -> str:
    if r is None or r.get("timeout"):
        return "-"
    return f"{float(r['peak_rss_mib']):,.0f}"


def _ratio(num: dict[str, object] | None, den: dict[str, object] | None) -> str:
    if not num or not den or num.get("timeout") or den.get("timeout"):
        return "-"
    return f"{float(num['seconds']) / float(den['seconds']):.1f}x"


def render(results: dict[str, dict[str, object]]) -> str:
    """The markdown results table, one row per N, with the target ratios."""
    lines = [
        "# Features: point-in-time profiles and BTYD summary",
        "",
        "`python -m benchmarks.bench_features --customers N` (each case in its own child "
        "process; seconds of the work itself, peak RSS of that process). Data: "
        f"`benchmarks/data/gen_<N>` ({MONTHS} months, seed {SEED}); as_of = first day after the "
        "last transaction's month. Cases: full profile over all seven tables streamed to "
        "Parquet; `btyd_summary` alone; lifetimes' `summary_data_from_transaction_data` via "
        "pandas on the same purchase rows (loading them into pandas not counted); a bare Polars "
        "scan of the transaction columns (collected); `scan_all`, a bare scan of every column "
        "of all seven tables (collected one after the other).",
        "",
        "Targets at 1M customers: BTYD >= 20x faster than lifetimes, full profile within 4x of "
        "the scan, peak memory < 6 GB. The profile reads all seven tables (at 1M: 32M "
        "transactions plus 15M usage, 15M network, 9.3M calls, 2M interaction rows) while the "
        "scan reads only the transactions, so `profile / scan` also measures the other "
        "tables' reads: `scan_all` alone, with no feature computed, already costs several "
        "times `scan`, which is why `profile / scan_all` is shown next to it. Per group at 1M "
        "(each on its own over the `who` base): spend ~2.4 s, BTYD ~2.2 s, usage ~1.1 s, "
        "network ~1.3 s, influence (each call pair grouped once, PageRank with scipy.sparse) "
        "~2.6 s, the rest < 0.5 s.",
        "",
        "| N | transactions | profile s | profile MiB | btyd s | btyd MiB | lifetimes s | "
        "lifetimes MiB | scan s | scan MiB | scan_all s | lifetimes / btyd | profile / scan | "
        "profile / scan_all | machine | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sorted(results, key=int):
        r = results[n]
        cases = {c: r.get(c) for c in CASES}
        btyd, life, prof, scan, scan_all = (
            cases["btyd"],
            cases["lifetimes"],
            cases["profile"],
            cases["scan"],
            cases["scan_all"],
        )
        speedup = "-"
        if btyd and life:
            ratio = float(life["seconds"]) / float(btyd["seconds"])
            speedup = f"> {ratio:.0f}x" if life.get("timeout") else f"{ratio:.0f}x"
        slowdown, slowdown_all = _ratio(prof, scan), _ratio(prof, scan_all)
        lines.append(
            f"| {int(n):,} | {int(r.get('transactions', 0)):,} | {_fmt_seconds(prof)} | "
            f"{_fmt_rss(prof)} | {_fmt_seconds(btyd)} | {_fmt_rss(btyd)} | "
            f"{_fmt_seconds(life)} | {_fmt_rss(life)} | {_fmt_seconds(scan)} | "
            f"{_fmt_rss(scan)} | {_fmt_seconds(scan_all)} | {speedup} | {slowdown} | "
            f"{slowdown_all} | {r.get('machine', '')} | "
            f"{r.get('date', '')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds after which a case is recorded as a timeout",
    )
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {CASES}")

    import polars as pl

    from crm_engine.io import load_tables
    from features import default_as_of

    data_dir = ensure_data(args.customers)
    tables = load_tables(data_dir)
    as_of = default_as_of(tables["transactions"])
    n_tx = tables["transactions"].select(pl.len()).collect().item()

    results: dict[str, dict[str, object]] = {}
    if RESULTS_JSON.exists():
        results = json.loads(RESULTS_JSON.read_text())
    entry = results.setdefault(str(args.customers), {})
    entry.update(
        transactions=n_tx,
        as_of=as_of.isoformat(),
        machine=_machine(),
        date=dt.date.today().isoformat(),
    )
    for case in cases:
        r = run_case(case, data_dir, as_of, args.timeout)
        entry[case] = r
        print(
            f"{args.customers:>9,} {case:<10} {_fmt_seconds(r):>12} s  {_fmt_rss(r):>8} MiB",
            flush=True,
        )
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    RESULTS_MD.write_text(render(results))
    print(RESULTS_MD)


if __name__ == "__main__":
    main()
