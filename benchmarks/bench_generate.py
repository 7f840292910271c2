"""Benchmark of the synthetic data generator: wall time, peak RSS and rows per table.

Run ``python -m benchmarks.bench_generate --customers 1000000``: generates into
``benchmarks/data/gen_<N>`` in a child process (so the peak RSS is the generator's alone) and
appends or updates the row for (customers, months, seed) in ``benchmarks/results/generate.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
from datetime import date
from pathlib import Path

import psutil

from crm_engine.contracts import INPUT_TABLES

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "generate.md"
HEADER = (
    "| N | months | seed | "
    + " | ".join(f"{name} rows" for name in INPUT_TABLES)
    + " | seconds | peak RSS (MiB) | machine | date |"
)

_CHILD = """
import json, sys
from pathlib import Path
from crm_engine.generator import generate
s = generate(Path(sys.argv[1]), customers=int(sys.argv[2]), months=int(sys.argv[3]),
             seed=int(sys.argv[4]), chunk_size=int(sys.argv[5]))
print(json.dumps({"rows": s.rows, "seconds": s.elapsed_seconds}))
"""


def run(customers: int, months: int, seed: int, chunk_size: int, out: Path) -> dict[str, object]:
    """Generate in a child process; returns rows, seconds and the child's peak RSS in MiB."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(out),
            str(customers),
            str(months),
            str(seed),
            str(chunk_size),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    result["peak_rss_mib"] = peak_kib / 1024
    return result


def update_table(path: Path, row: dict[str, object], key: tuple[str, str, str]) -> None:
    """Append the row, replacing an earlier one with the same (customers, months, seed)."""
    lines = path.read_text().splitlines() if path.exists() else []
    if not lines or lines[0] != HEADER:
        lines = (
            [
                "# Synthetic data generator",
                "",
                "`python -m benchmarks.bench_generate --customers N` (child process, "
                "peak RSS of the child).",
                "",
                HEADER,
                "|" + "---|" * HEADER.count(" | ") + "---|",
            ]
            if not lines
            else lines
        )
    cells = [str(row["customers"]), str(row["months"]), str(row["seed"])]
    rows = row["rows"]
    assert isinstance(rows, dict)
    cells += [f"{rows[name]:,}" for name in INPUT_TABLES]
    cells += [
        f"{row['seconds']:.1f}",
        f"{row['peak_rss_mib']:.0f}",
        str(row["machine"]),
        str(row["date"]),
    ]
    new = "| " + " | ".join(cells) + " |"
    prefix = "| " + " | ".join(key) + " |"
    lines = [ln for ln in lines if not ln.startswith(prefix)]
    lines.append(new)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-size", type=int, default=100_000)
    args = parser.parse_args(argv)
    out = ROOT / "data" / f"gen_{args.customers}"
    result = run(args.customers, args.months, args.seed, args.chunk_size, out)
    row = {
        "customers": args.customers,
        "months": args.months,
        "seed": args.seed,
        **result,
        "machine": f"{psutil.cpu_count()} cpu, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.python_version()}",
        "date": date.today().isoformat(),
    }
    update_table(RESULTS, row, (str(args.customers), str(args.months), str(args.seed)))
    total = sum(result["rows"].values())  # type: ignore[union-attr]
    sys.stdout.write(
        f"{args.customers:,} customers x {args.months} months: {total:,} rows in "
        f"{result['seconds']:.1f} s, peak RSS {result['peak_rss_mib']:.0f} MiB -> {out}\n"
    )


if __name__ == "__main__":
    main()
