"""Why the churn model sits below the as-of oracle: the same frames and report half as
``bench_churn``'s truth row, refitted with more tree capacity and with what no table carries.

Run ``python -m benchmarks.bench_churn_gap --customers 100000``. On a generated operator
(seed 7, as of 2025-01-01, horizon 90 days, the default config's stacked snapshots) it fits
``train_churn`` (i) as the pipeline does, (ii) with LightGBM trees of 15 and 31 leaves, (iii)
with the customer's latent traits from ``_truth`` as two more features (the static part of the
generator's hazard logit: persona, network badness, price sensitivity, satisfaction, plan;
and the complaint rate), and (iv) with those and the generator's monthly hazard of the cut's
month (from the state at the month's start, before the cut: what the oracle starts from), and
reports each one's AUC gap to the as-of oracle on the validation cut's report half with its
paired DeLong SE. (iii) and (iv) read the truth: they measure what the tables lack, they are
no model. Results go to ``benchmarks/results/churn_gap.md`` (and ``churn_gap.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from benchmarks.bench_churn import delong

if TYPE_CHECKING:
    from churn import ChurnModel
    from crm_engine.config import ChurnConfig

ROOT = Path(__file__).resolve().parent
RESULTS_MD = ROOT / "results" / "churn_gap.md"
RESULTS_JSON = ROOT / "results" / "churn_gap.json"
AS_OF, H = dt.date(2025, 1, 1), 90
SEEDS = (0, 1, 2, 3)
"""Seeds of the refits whose mean gap estimates the expected one (``bench_churn``'s truth rows)."""


def latent_traits(truth_dir: Path) -> pl.DataFrame:
    """``customer_id``, ``latent_logit`` (the hazard logit's static part), ``complaint_rate``."""
    from crm_engine.generator.hazard import static_logit
    from crm_engine.generator.personas import ChurnEffects

    truth = pl.read_parquet(truth_dir / "customers.parquet")
    params = json.loads((truth_dir / "params.json").read_text())
    persona = truth.get_column("persona").replace_strict(
        {k: v["churn"]["base_logit"] for k, v in params["personas"].items()},
        return_dtype=pl.Float64,
    )
    logit = static_logit(
        ChurnEffects(**params["churn_effects"]),
        persona.to_numpy(),
        truth.get_column("network_badness").to_numpy(),
        truth.get_column("price_sensitivity").to_numpy(),
        truth.get_column("contract_end_date").is_null().to_numpy(),
        truth.get_column("satisfaction").to_numpy(),
    )
    return truth.select("customer_id", "complaint_rate").with_columns(
        pl.Series("latent_logit", logit)
    )


def report_gap(model: ChurnModel, valid: pl.DataFrame, oracle: pl.DataFrame) -> dict[str, Any]:
    """The as-of oracle's AUC minus ``model``'s on the model's own report half of ``valid``
    (``churn.model.validation_halves(valid, model.seed)``), with the paired DeLong SE.

    ``oracle`` holds ``customer_id`` and ``p_churn`` at ``valid``'s cut
    (``crm_engine.generator.as_of_churn_probability``); report-half customers it lacks are
    left out of both AUCs.
    """
    from churn.model import validation_halves

    label = f"churned_within_{model.horizon_days}d"
    _, report = validation_halves(valid, model.seed)
    rep = (
        valid.filter(pl.Series(report))
        .select("customer_id", label)
        .with_columns(pl.Series("p_model", model.report_p_))
        .join(oracle, on="customer_id", how="inner")
    )
    (auc, oracle_auc), cov = delong(
        rep[label].to_numpy(), [rep["p_model"].to_numpy(), rep["p_churn"].to_numpy()]
    )
    return {
        "learner": model.learner,
        "trees": model.best_iteration_,
        "auc": float(auc),
        "oracle_auc": float(oracle_auc),
        "gap": float(oracle_auc - auc),
        "gap_se": float(np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])),
        "report_rows": rep.height,
    }


def refit_gap(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    churn_cfg: ChurnConfig,
    features: Sequence[str],
    oracle: pl.DataFrame,
) -> dict[str, Any]:
    """``train_churn`` on the frames with ``churn_cfg``, then :func:`report_gap` on its report
    half; ``seconds`` is the wall time of both."""
    from churn import train_churn

    t0 = time.perf_counter()
    model = train_churn(train, valid, churn_cfg, features)
    return {**report_gap(model, valid, oracle), "seconds": time.perf_counter() - t0}


def seed_gaps(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    churn_cfg: ChurnConfig,
    features: Sequence[str],
    oracle: pl.DataFrame,
    seeds: Sequence[int] = SEEDS,
) -> list[dict[str, Any]]:
    """:func:`refit_gap` once per seed, ``churn_cfg.seed`` replaced: each seed seeds the learner
    and picks its own report half (as the seed tables of ``results/churn_gap.md``)."""
    return [
        {
            "seed": s,
            **refit_gap(train, valid, churn_cfg.model_copy(update={"seed": s}), features, oracle),
        }
        for s in seeds
    ]


def expected_gap(gaps: Sequence[float], ses: Sequence[float]) -> tuple[float, float]:
    """Mean of the seeds' gaps and its standard error, the seeds' SEs combined as independent:
    ``sqrt(sum se**2) / n``. The report halves share customers and the fits their training
    rows, so the gaps are positively correlated and this understates the mean's noise."""
    if len(gaps) != len(ses) or not gaps:
        raise ValueError(
            f"gaps and ses must be equally long and not empty: {len(gaps)}, {len(ses)}"
        )
    n = len(gaps)
    return float(np.mean(gaps)), float(np.sqrt(np.sum(np.square(ses))) / n)


def diagnose(customers: int) -> dict[str, Any]:
    from churn.frames import CUT_COLUMN, build_training_frames, training_cuts
    from churn.training import profile_features
    from crm_engine.config import PipelineConfig
    from crm_engine.generator import as_of_churn_probability, generate
    from crm_engine.io import load_tables
    from features import PointInTime

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate(data, customers=customers, months=24, seed=7)
        tables = load_tables(data)
        cfg = PipelineConfig()
        snapshots = cfg.churn.training_snapshots
        at = PointInTime.of(tables, AS_OF)
        train, valid = build_training_frames(
            at, cfg.features, cfg.churn.extra_features, H, snapshots=snapshots
        )
        features = profile_features(tables, cfg.features)
        cut = training_cuts(AS_OF, H, snapshots).valid
        oracle = as_of_churn_probability(data / "_truth", cut, H)
        latent = latent_traits(data / "_truth")
        hazard = (
            pl.read_parquet(data / "_truth" / "churn_hazard.parquet")
            .rename({"month": "cut_month", "hazard": "hazard_cut_month"})
            .with_columns(pl.col("hazard_cut_month").cast(pl.Float64))
        )

        def with_truth(frame: pl.DataFrame, now: bool) -> pl.DataFrame:
            out = frame.join(latent, on="customer_id", how="left")
            if not now:
                return out
            month = pl.col(CUT_COLUMN).dt.truncate("1mo").alias("cut_month")
            return (
                out.with_columns(month)
                .join(hazard, on=["customer_id", "cut_month"], how="left")
                .drop("cut_month")
            )

        base = cfg.churn.model_copy(update={"horizon_days": H})
        lgbm = base.model_copy(update={"model": "lightgbm"})
        extra = ["latent_logit", "complaint_rate"]
        variants: list[tuple[str, pl.DataFrame, pl.DataFrame, Any, list[str]]] = [
            ("as the pipeline fits it", train, valid, base, features),
        ]
        for leaves, depth, least in ((15, 5, 100), (31, 6, 50)):
            grown = base.lightgbm.model_copy(
                update={"num_leaves": leaves, "max_depth": depth, "min_child_samples": least}
            )
            variants.append(
                (
                    f"LightGBM, {leaves} leaves, depth {depth}, {least} rows a leaf",
                    train,
                    valid,
                    lgbm.model_copy(update={"lightgbm": grown}),
                    features,
                )
            )
        variants.append(
            (
                "+ latent traits (truth)",
                with_truth(train, False),
                with_truth(valid, False),
                base,
                [*features, *extra],
            )
        )
        variants.append(
            (
                "+ latent traits and the cut month's hazard (truth)",
                with_truth(train, True),
                with_truth(valid, True),
                base,
                [*features, *extra, "hazard_cut_month"],
            )
        )
        rows = []
        for name, tr, va, churn_cfg, cols in variants:
            rows.append({"variant": name, **refit_gap(tr, va, churn_cfg, cols, oracle)})
            print(json.dumps(rows[-1]), flush=True)
    return {"customers": customers, "train_rows": train.height, "variants": rows}


def write_results(result: dict[str, Any]) -> None:
    RESULTS_JSON.write_text(json.dumps(result, indent=2))
    lines = [
        "## Churn: what the gap to the as-of oracle is made of",
        "",
        f"`python -m benchmarks.bench_churn_gap --customers {result['customers']}`: the frames "
        f"and report half of `bench_churn`'s {result['customers']:,}-customer row "
        f"({result['train_rows']:,} training rows), refitted; the gap is the as-of oracle's "
        "AUC minus the model's on the same customers (paired DeLong SE). Rows marked *truth* "
        "read `_truth`: what the tables lack, not a model.",
        "",
        "| fit | kept | trees | AUC | gap to as of (SE) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in result["variants"]:
        lines.append(
            f"| {r['variant']} | {r['learner']} | {r['trees']} | {r['auc']:.4f} | "
            f"{r['gap']:.4f} ({r['gap_se']:.4f}) |"
        )
    RESULTS_MD.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    write_results(diagnose(args.customers))
    print(RESULTS_MD)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
