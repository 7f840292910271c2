"""The pipeline's churn model against the best any model could do: the generator's as-of oracle
(``crm_engine.generator.as_of_churn_probability``) on the same report-half customers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchmarks.bench_churn import delong
from churn import train_churn
from churn.frames import build_training_frames, training_cuts
from churn.model import validation_halves
from churn.training import profile_features
from crm_engine.config import PipelineConfig
from crm_engine.generator import as_of_churn_probability, generate
from crm_engine.io import load_tables
from features import PointInTime

AS_OF = dt.date(2025, 1, 1)
H = 90
LABEL = f"churned_within_{H}d"
TARGET = 0.02
"""Largest expected AUC gap to the as-of oracle at 20,000 customers (issue 16's target there;
``benchmarks/results/churn.md``, 6 training cuts: 0.0011 for the pipeline's fit, paired DeLong
SE 0.0051, and 0.0107 averaged over four refits and report halves)."""


@pytest.mark.slow
def test_churn_model_auc_is_within_reach_of_the_as_of_oracle(tmp_path: Path) -> None:
    """The kept model (default config: stacked snapshots, both learners) within ``TARGET``
    plus two paired standard errors below the oracle, and not above it by more than three
    (a model beating the best possible reads something it should not, or the oracle misses
    something a model can see, as it did the bills before it read them). Measured: gap
    0.0011, SE 0.0051, so the test fails at a gap of ~0.030 (a model that lost a strong
    driver) or below ~-0.015; the model scoring shuffled features (AUC ~0.5) is far out.
    """
    world = tmp_path / "data"
    generate(world, customers=20_000, months=24, seed=7)
    tables = load_tables(world)
    cfg = PipelineConfig()
    train, valid = build_training_frames(
        PointInTime.of(tables, AS_OF),
        cfg.features,
        cfg.churn.extra_features,
        H,
        snapshots=cfg.churn.training_snapshots,
    )
    model = train_churn(
        train,
        valid,
        cfg.churn.model_copy(update={"horizon_days": H}),
        profile_features(tables, cfg.features),
    )
    _, report = validation_halves(valid, model.seed)
    rep = valid.filter(pl.Series(report))
    assert (rep[LABEL].cast(pl.Int8).to_numpy() == model.report_y_).all()
    cut = training_cuts(AS_OF, H, cfg.churn.training_snapshots).valid
    oracle = as_of_churn_probability(world / "_truth", cut, H)
    joined = rep.with_columns(pl.Series("p_model", model.report_p_)).join(
        oracle, on="customer_id", how="left"
    )
    assert joined["p_churn"].null_count() == 0  # the oracle's population is the labels'
    y = joined[LABEL].to_numpy()
    # the same fitted model scoring each feature column shuffled across customers
    rng = np.random.default_rng(0)
    features = [c for c in model.feature_names_in_ if c in rep.columns]
    shuffled = rep.with_columns(pl.Series(c, rng.permutation(rep[c].to_numpy())) for c in features)
    p_shuffled = model.predict_churn(shuffled.drop(LABEL))
    scores = [joined["p_model"].to_numpy(), joined["p_churn"].to_numpy(), p_shuffled]
    (model_auc, oracle_auc, shuffled_auc), cov = delong(y, scores)
    assert model_auc == pytest.approx(model.metrics_["roc_auc"])
    gap_se = float(np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]))
    assert 0.003 < gap_se < 0.012, gap_se
    assert -3 * gap_se <= oracle_auc - model_auc <= TARGET + 2 * gap_se, (
        model_auc,
        oracle_auc,
        gap_se,
    )
    # ... a test that can fail: without its features the model is far outside it
    shuffled_se = float(np.sqrt(cov[2, 2] + cov[1, 1] - 2 * cov[1, 2]))
    assert abs(shuffled_auc - 0.5) < 0.05
    assert oracle_auc - shuffled_auc > TARGET + 10 * max(gap_se, shuffled_se)
