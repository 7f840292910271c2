"""The whole pipeline end to end at scale: ``crm-engine run`` on generated operators.

Run ``python -m benchmarks.bench_scale --customers 1000000 10000000``. Each size runs the real
CLI (every stage, tracking to an embedded store in the output directory) in a child process on
``benchmarks/data/gen_<N>`` (generated first when missing: ``benchmarks.bench_generate``); a
sampler sums the RSS of the child's whole process tree every 0.25 s. The wall time of each stage
comes from the run's manifest. Rows go to ``benchmarks/results/scale.md``, one per
(customers, backend); a run that fails is recorded with the stage it reached and why.

Targets (local backend, this machine): 1M end to end < 3 min and < 4 GB; 10M < 15 min and
< 8 GB. The Spark backend column stays empty until that backend exists.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "scale.md"
STAGES = ("validate", "profile", "segmentation", "valuation", "churn", "assemble", "write")
HEADER = (
    "| customers | backend | transactions | "
    + " | ".join(f"{s} s" for s in STAGES)
    + " | total s | peak RSS GB | customers/s | result | machine | date |"
)
TARGETS = {1_000_000: (180.0, 4.0), 10_000_000: (900.0, 8.0)}
"""customers -> (seconds, GB) the issue sets for the local backend."""


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_pipeline_child(data: Path, out: Path, log: Path) -> dict[str, object]:
    """``crm-engine run`` on ``data`` in a child; wall time, peak tree RSS, its manifest."""
    cli = Path(sys.executable).parent / "crm-engine"
    cmd = [str(cli), "run", "--data", str(data), "--out", str(out)]
    peak = 0
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        child = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        proc = psutil.Process(child.pid)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss(proc))
                done.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = child.wait()
        done.set()
        sampler.join()
    seconds = time.perf_counter() - t0
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if code == 0 else {}
    tail = log.read_text().strip().splitlines()[-1:] if code else []
    return {
        "code": code,
        "seconds": seconds,
        "peak_gb": peak / 1e9,
        "timings": manifest.get("timings_s", {}),
        "scored": manifest.get("outputs", {}).get("scores.parquet", {}).get("rows"),
        "error": tail[0][:160] if tail else "",
    }


def stage_times_from_store(out: Path) -> tuple[dict[str, float], str | None]:
    """Seconds of each finished stage, and the stage still running, from the embedded MLflow
    store of a run that did not finish (its manifest was never written)."""
    import sqlite3

    db = out / "mlflow.db"
    if not db.is_file():
        return {}, None
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "select r.name, r.status, r.start_time, r.end_time from runs r join tags t "
            "on t.run_uuid = r.run_uuid and t.key = 'crm.stage' order by r.start_time"
        ).fetchall()
    done = {name: (end - start) / 1000 for name, status, start, end in rows if end}
    running = next((name for name, status, _, end in rows if end is None), None)
    return done, running


def transactions_rows(data: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(p).num_rows for p in (data / "transactions").rglob("*.parquet"))


def update_table(row: list[str], key: str) -> None:
    """Append the row, replacing an earlier one with the same (customers, backend)."""
    lines = RESULTS.read_text().splitlines() if RESULTS.exists() else []
    if HEADER not in lines:
        lines = [
            "# Scale: the whole pipeline end to end",
            "",
            "`python -m benchmarks.bench_scale --customers N [N ...]`: `crm-engine run` (every "
            "stage, embedded MLflow store) in a child process on `benchmarks/data/gen_<N>` (24 "
            "months, seed 0); peak RSS of the child's process tree sampled every 0.25 s; stage "
            "times from the run's manifest. Targets, local backend: 1M < 180 s and < 4 GB; 10M "
            "< 900 s and < 8 GB.",
            "",
            HEADER,
            "|" + "---|" * (HEADER.count(" | ") + 1),
        ]
    lines = [ln for ln in lines if not ln.startswith(key)]
    lines.append("| " + " | ".join(row) + " |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument(
        "--recorded",
        nargs=3,
        metavar=("EXIT", "SECONDS", "PEAK_GB"),
        help="do not run: rebuild the row of a run this script measured (its exit code, wall "
        "seconds and peak GB) from the output it left in benchmarks/data/scale_<N>",
    )
    args = parser.parse_args(argv)
    machine = (
        f"{psutil.cpu_count()} cpu, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.python_version()}"
    )
    for n in args.customers:
        data = ROOT / "data" / f"gen_{n}"
        if not (data / "customers").is_dir():
            subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_generate", "--customers", str(n)],
                check=True,
            )
        out = ROOT / "data" / f"scale_{n}"
        if args.recorded:  # rebuild the row of a run measured before from its output
            code_text, seconds_text, peak_text = args.recorded
            result = {"code": int(code_text), "seconds": float(seconds_text),
                      "peak_gb": float(peak_text), "timings": {}, "error": ""}  # fmt: skip
        else:
            result = run_pipeline_child(data, out, ROOT / "data" / f"scale_{n}.log")
        timings: dict[str, float] = result["timings"]  # type: ignore[assignment]
        seconds = float(result["seconds"])  # type: ignore[arg-type]
        peak = float(result["peak_gb"])  # type: ignore[arg-type]
        if result["code"] == 0:
            limit_s, limit_gb = TARGETS.get(n, (float("inf"), float("inf")))
            verdict = "ok" if seconds < limit_s and peak < limit_gb else "over target"
        else:
            timings, running = stage_times_from_store(out)
            how = "killed (out of memory?)" if result["code"] == -9 else "failed"
            verdict = f"{how}, exit {result['code']}, in stage {running or '?'}"
            verdict += f": {result['error']}" if result["error"] else ""
            verdict = verdict.replace("|", "/")
        row = [
            f"{n:,}",
            "local",
            f"{transactions_rows(data):,}",
            *(f"{timings[s]:.1f}" if s in timings else "-" for s in STAGES),
            f"{seconds:.0f}",
            f"{peak:.1f}",
            f"{n / seconds:,.0f}",
            verdict,
            machine,
            date.today().isoformat(),
        ]
        update_table(row, f"| {n:,} | local |")
        sys.stdout.write(f"{n:,} customers: {seconds:.0f} s, peak {peak:.1f} GB, {verdict}\n")


if __name__ == "__main__":
    main()
