"""Churn contagion: the estimated effect against the generator's planted one, and its cost.

Run ``python -m benchmarks.bench_contagion`` (default 20,000 and 100,000 generated customers,
24 months, seed 7, as_of the end of the data). Each size is generated twice, with the planted
contagion (2.5 on the logit of the monthly hazard per unit share of contacts gone in the
previous 3 months) and with none; ``churn.contagion.estimate_contagion`` runs as the churn
stage runs it (12 months, 90-day window, at most 250,000 customers), then the network values of
every customer are timed as the stage computes them. Results go to
``benchmarks/results/contagion.md`` (and ``contagion.json``).
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

import polars as pl
import psutil

ROOT = Path(__file__).resolve().parent
RESULTS_MD = ROOT / "results" / "contagion.md"
RESULTS_JSON = ROOT / "results" / "contagion.json"
SEED = 7


def stage_work(
    tables: dict[str, pl.LazyFrame], as_of: dt.date, customers: int
) -> tuple[Any, float, float, int]:
    """The churn stage's contagion work, timed: the bounded estimate, then the network values
    of every customer (churn probability and CLV constant: only the cost is measured).
    Returns the estimate, both times in seconds and the customers with a network value."""
    from churn.contagion import estimate_contagion
    from churn.network import network_values
    from crm_engine.config import PipelineConfig
    from features import CustomerSample
    from features.influence import undirected_edges

    cfg = PipelineConfig()
    t0 = time.perf_counter()
    found = estimate_contagion(
        tables,
        as_of,
        months=cfg.contagion.months,
        contagion_days=cfg.features.contagion_days,
        sample=CustomerSample.bounded(customers, cfg.contagion.max_customers),
    )
    estimate_seconds = time.perf_counter() - t0
    scored = (
        tables["customers"]
        .select("customer_id", pl.lit(0.05).alias("churn_probability"), pl.lit(100.0).alias("clv"))
        .collect()
    )
    t0 = time.perf_counter()
    values = network_values(
        undirected_edges(tables["calls"], as_of), scored, found, cfg.churn.horizon_days
    )
    with_value = int((values["network_value"] > 0).sum())
    return found, estimate_seconds, time.perf_counter() - t0, with_value


def one(customers: int, planted: float, root: Path) -> dict[str, Any]:
    from crm_engine.generator import generate
    from crm_engine.generator.personas import ChurnEffects, WorldParams
    from crm_engine.io import load_tables

    data = root / f"g{customers}_{planted:g}"
    summary = generate(
        data,
        customers=customers,
        months=24,
        seed=SEED,
        params=WorldParams(churn=ChurnEffects(contagion=planted)),
    )
    found, estimate_seconds, network_seconds, with_value = stage_work(
        load_tables(data), summary.end, customers
    )
    return found.to_dict() | {
        "customers": customers,
        "planted": planted,
        "estimate_seconds": estimate_seconds,
        "network_seconds": network_seconds,
        "with_network_value": with_value,
        "relative_error": (found.coefficient / planted - 1) if planted else None,
    }


def timing(data: Path) -> dict[str, Any]:
    """:func:`stage_work` on an existing generated operator (e.g.
    ``benchmarks/data/gen_1000000`` of bench_scale)."""
    import resource

    from crm_engine.io import load_tables
    from features import default_as_of

    tables = load_tables(data)
    customers = int(tables["customers"].select(pl.len()).collect().item())
    found, estimate_seconds, network_seconds, _ = stage_work(
        tables, default_as_of(tables["transactions"]), customers
    )
    return {
        "data": str(data),
        "customers": customers,
        "rows": found.rows,
        "estimate_seconds": estimate_seconds,
        "network_seconds": network_seconds,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def bench(sizes: list[int]) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory(dir=ROOT / "data") as tmp:
        for n in sizes:
            for planted in (2.5, 0.0):
                rows.append(one(n, planted, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
    return {"rows": rows, "date": dt.date.today().isoformat()}


def write_results(r: dict[str, Any]) -> None:
    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(r, indent=2))
    cpus = psutil.cpu_count()
    mem = psutil.virtual_memory().total / 2**30
    lines = [
        "## Churn contagion: estimated against planted",
        "",
        f"`python -m benchmarks.bench_contagion` ({platform.machine()}, {cpus} cores, "
        f"{mem:.0f} GB, {r['date']}). Generated operators (seed {SEED}, 24 months) with the "
        "planted contagion (2.5 on the logit of the monthly churn hazard per unit share of "
        "contacts gone in the previous 3 months) and with none, estimated at the end of the "
        "data as the churn stage does (`churn.contagion`: 12 months of customer months, "
        "90-day window). Targets (issue 15): within 25% of the planted effect at 100,000; with "
        "none planted, an interval covering 0.",
        "",
        "| customers | planted | estimate | 95% interval | error | contract end (planted "
        "+1.2) | inside the term (planted -1.0) | customer months | churns | exposed | "
        "estimate s | network values s |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        err = "-" if row["relative_error"] is None else f"{row['relative_error']:+.1%}"
        net = f"{row['network_seconds']:.1f}"
        controls = row.get("controls", {})
        end, term = (
            f"{controls[c][0]:+.3f} (s.e. {controls[c][1]:.3f})" if c in controls else "-"
            for c in ("contract_end", "in_contract")
        )
        lines.append(
            f"| {row['customers']:,} | {row['planted']:g} | {row['coefficient']:.3f} | "
            f"{row['ci_low']:.3f} to {row['ci_high']:.3f} | {err} | {end} | {term} | "
            f"{row['rows']:,} | "
            f"{row['events']:,} | {row['exposed']:,} | {row['estimate_seconds']:.1f} | {net} |"
        )
    lines += [
        "",
        "The estimate falls short of the planted effect because the data does not see every "
        "contact the generator counts: a pair is seen once they call, and an edge is used in "
        "30% of months on average, so about a quarter of a customer's signed-up contacts have "
        "not called yet at a given month, which dilutes the measured share (with the "
        "generator's own share the same regression gives 2.45 at 20,000).",
        "",
    ]
    t = r.get("timing")
    if t:
        lines += [
            f"Cost at {t['customers']:,} customers (`--time-on {t['data']}`): the estimate on "
            f"at most 250,000 hashed customers ({t['rows']:,} customer months) "
            f"{t['estimate_seconds']:.1f} s, the network values of every customer "
            f"{t['network_seconds']:.1f} s, peak RSS {t['peak_rss_gb']:.1f} GB.",
            "",
        ]
    RESULTS_MD.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument(
        "--time-on", type=Path, default=None, help="also time the stage's work on this operator"
    )
    args = parser.parse_args()
    (ROOT / "data").mkdir(exist_ok=True)
    r = bench(args.customers)
    if args.time_on is not None:
        r["timing"] = timing(args.time_on)
    write_results(r)
    print(RESULTS_MD)


if __name__ == "__main__":
    main()
