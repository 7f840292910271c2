"""Silhouettes of several labelings from one distance pass equal scikit-learn's, one by one (to
float32 precision: it sums float32 distances in float32, this module in float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score

from segmentation.silhouette import silhouette_scores


def test_each_labeling_scores_as_scikit_learn_scores_it() -> None:
    X, truth = make_blobs(n_samples=3_000, centers=5, n_features=6, random_state=0)
    X = X.astype(np.float32)
    rng = np.random.default_rng(1)
    alone = truth.copy()
    alone[7] = 99  # a cluster of one row: its silhouette is 0
    labelings = [truth, rng.integers(0, 3, len(X)), alone, np.where(truth > 1, 10, -4)]
    got = silhouette_scores(X, labelings)
    expected = [silhouette_score(X, labels) for labels in labelings]
    assert got == pytest.approx(expected, rel=1e-6)
    assert got[0] > 0.5 > got[1]  # the true blobs separate, random labels do not


def test_one_cluster_or_one_row_each_has_no_score() -> None:
    X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    scores = silhouette_scores(X, [np.zeros(50, int), np.arange(50), np.arange(50) % 2])
    assert math.isnan(scores[0]) and math.isnan(scores[1])
    assert scores[2] == pytest.approx(silhouette_score(X, np.arange(50) % 2), rel=1e-6)
