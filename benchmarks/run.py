"""Run every benchmark at its default size, then rebuild benchmarks/README.md from the results.

python -m benchmarks.run            # all benchmarks (tens of minutes on 2 cores)
python -m benchmarks.run --readme   # only rebuild the README from benchmarks/results/*.md
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "generate",
    "features",
    "valuation",
    "postpaid",
    "segmentation",
    "churn",
    "contagion",
    "scale",
]

HEADER = """# Benchmarks

Performance targets from the issues, measured on this project's machine (2 cores, 24 GB, no GPU),
each against the baseline the issue names, in the same run. Every table below is written by its
benchmark script; `python -m benchmarks.run` runs them all and rebuilds this file, and each
section names the command that reproduces it. Generated data goes to `benchmarks/data/`
(git-ignored).
"""


def rebuild_readme() -> Path:
    """Concatenate the per-benchmark result files into benchmarks/README.md."""
    parts = [HEADER]
    results = HERE / "results"
    files = sorted(
        results.glob("*.md"),
        key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem),
    )
    for f in files:
        parts.append(f.read_text().strip() + "\n")
    if not files:
        parts.append("_No results recorded yet._\n")
    out = HERE / "README.md"
    out.write_text("\n".join(parts))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readme", action="store_true", help="only rebuild the README")
    args = parser.parse_args()
    if not args.readme:
        for name in ORDER:
            module = f"benchmarks.bench_{name}"
            if (HERE / f"bench_{name}.py").is_file():
                print(f"== {module}", flush=True)
                subprocess.run([sys.executable, "-m", module], check=True)
    print(rebuild_readme())


if __name__ == "__main__":
    main()
