"""Against the generator's ground truth: oracle AUC/Brier, loyalty AUC, no leak; and the CLI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sklearn.metrics import brier_score_loss, roc_auc_score
from typer.testing import CliRunner

from churn import ChurnModel
from churn.frames import build_training_frames
from churn.model import validation_halves
from churn.training import train_models
from crm_engine.config import PipelineConfig
from crm_engine.generator import generate, true_churn_probability
from crm_engine.io import load_tables
from features import CustomerSample, PointInTime

AS_OF = dt.date(2025, 1, 1)
H = 90
LABEL = f"churned_within_{H}d"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "data"
    generate(out, customers=100_000, months=24, seed=7)
    return out


@pytest.fixture(scope="module")
def frames(world: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    cfg = PipelineConfig()
    return build_training_frames(PointInTime.of(load_tables(world), AS_OF), cfg.features, [], H)


TRAINING_CUSTOMERS = 30_000
"""Customers of the world the oracle test trains and validates on: a hashed sample, as
``churn.max_training_customers`` bounds a run's training at scale. Out-of-time AUC 0.7750
against the oracle's 0.7835 on the same customers, in 43 s on one thread; all 100,000: 0.7906
against 0.7902, in 136 s."""


@pytest.mark.slow
def test_churn_close_to_oracle_out_of_time(world: Path) -> None:
    sample = CustomerSample.bounded(100_000, TRAINING_CUSTOMERS)
    at = PointInTime.of(load_tables(world), AS_OF, sample=sample)
    training = train_models(at, PipelineConfig(), H)
    model = training.churn
    _, valid = build_training_frames(at, PipelineConfig().features, [], H)
    _, report = validation_halves(valid, model.seed)
    rep = valid.filter(pl.Series(report)).select("customer_id", LABEL)
    truth = true_churn_probability(world / "_truth", training.valid_cut, H)
    joined = rep.join(truth, on="customer_id", how="inner")
    assert joined.height > 0.99 * rep.height
    y = joined[LABEL].to_numpy()
    oracle_auc = roc_auc_score(y, joined["p_churn"].to_numpy())
    oracle_brier = brier_score_loss(y, joined["p_churn"].to_numpy())
    m = model.metrics_
    assert m["roc_auc"] >= oracle_auc - 0.03, (m["roc_auc"], oracle_auc)
    assert m["brier"] <= 1.10 * oracle_brier, (m["brier"], oracle_brier)
    assert abs(m["mean_prediction"] - m["base_rate"]) < 0.01
    # six stacked snapshots, a month apart, and the learning curve over 1, 3 and 6 of them
    assert training.cuts.train == (
        dt.date(2024, 7, 5),
        dt.date(2024, 6, 5),
        dt.date(2024, 5, 6),
        dt.date(2024, 4, 6),
        dt.date(2024, 3, 7),
        dt.date(2024, 2, 6),
    )
    curve = training.learning_curve
    assert [r["snapshots"] for r in curve] == [1.0, 3.0, 6.0]
    rows = [r["train_rows"] for r in curve]
    assert rows[0] < rows[1] < rows[2] == m["train_rows"]
    assert curve[-1]["roc_auc"] == m["roc_auc"]
    assert all(r["roc_auc"] >= oracle_auc - 0.03 for r in curve), curve
    # the smaller fits reach MLflow as metrics too, so runs can be compared on them
    assert training.metrics["churn.snapshots_1.roc_auc"] == curve[0]["roc_auc"]
    # loyalty: every class (one-vs-rest) is separable out of time, passives included
    lm = training.loyalty.metrics_
    for cls in ("detractor", "passive", "promoter"):
        assert lm[f"auc_{cls}"] > 0.7, lm


@pytest.mark.slow
def test_shuffled_labels_no_leak(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    train, valid = frames
    rng = np.random.default_rng(0)
    shuffled = [
        f.with_columns(pl.Series(LABEL, rng.permutation(f[LABEL].to_numpy())))
        for f in (train, valid)
    ]
    model = ChurnModel(horizon_days=H).fit(*shuffled)
    assert abs(model.metrics_["raw_roc_auc"] - 0.5) < 0.05
    assert abs(model.metrics_["roc_auc"] - 0.5) < 0.05


def test_training_cuts_are_earlier_snapshots(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    train, valid = frames
    for f in (train, valid):
        assert not any(c in f.columns for c in ("churn_date", "next_nps"))
        assert f[LABEL].null_count() == 0
    # the validation cut is a later snapshot: customers who signed up in between appear
    assert set(valid["customer_id"]) - set(train["customer_id"])
    both = train.select("customer_id", "tenure_days").join(
        valid.select("customer_id", "tenure_days"), on="customer_id", suffix="_valid"
    )
    assert (both["tenure_days_valid"] - both["tenure_days"] == H).all()


def test_bounded_training_frames_are_the_sampled_rows(
    world: Path, frames: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    # At 10M customers the frames are built on a hashed share: every sampled row (features
    # and labels, call-graph columns included) must be the row the full frame holds.
    sample = CustomerSample.bounded(100_000, 20_000, seed=3)
    assert sample is not None
    cfg = PipelineConfig()
    at = PointInTime.of(load_tables(world), AS_OF, sample=sample)
    bounded = build_training_frames(at, cfg.features, [], H)
    for full, part in zip(frames, bounded, strict=True):
        assert 0.15 * full.height < part.height < 0.25 * full.height
        expected = full.filter(sample.expr())
        assert_frame_equal(part, expected)
    # the same customers at both cuts (who is in depends on the id alone)
    train, valid = bounded
    kept = set(valid["customer_id"]) & set(frames[0]["customer_id"])
    assert kept <= set(train["customer_id"])


@pytest.mark.slow
def test_cli_train_and_score(tmp_path: Path) -> None:
    from crm_engine.cli import app

    data = tmp_path / "data"
    generate(data, customers=6_000, months=24, seed=3)
    uri = f"sqlite:///{tmp_path}/m.db"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "churn",
            "train",
            "--data",
            str(data),
            "--as-of",
            "2025-01-01",
            "--horizon-days",
            "90",
            "--tracking-uri",
            uri,
        ],
    )
    assert res.exit_code == 0, res.output
    assert "roc_auc" in res.output and "churn=1" in res.output
    out = tmp_path / "churn.parquet"
    res = runner.invoke(
        app,
        [
            "churn",
            "score",
            "--data",
            str(data),
            "--as-of",
            "2025-01-01",
            "--out",
            str(out),
            "--tracking-uri",
            uri,
        ],
    )
    assert res.exit_code == 0, res.output
    scores = pl.read_parquet(out)
    assert scores["customer_id"].is_unique().all()
    assert scores["churn_probability"].is_between(0, 1).all()
    assert set(scores["churn_risk_band"].unique()) <= {"low", "medium", "high"}
    assert scores["loyalty_class"].null_count() == 0
    assert scores["as_of"].unique().to_list() == [dt.date(2025, 1, 1)]
    # a bad model URI is a one-line user error, not a traceback
    res = runner.invoke(
        app,
        [
            "churn",
            "score",
            "--data",
            str(data),
            "--as-of",
            "not-a-date",
            "--out",
            str(out),
            "--tracking-uri",
            uri,
        ],
    )
    assert res.exit_code == 1
    assert "not a date" in res.output
