"""The Segmenter estimator: recovery, determinism, k search, errors, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score

from segmentation import DEFAULT_FEATURES, MissingFeatureError, Segmenter


def test_recovers_planted_blobs_with_auto_k(blobs: pl.DataFrame) -> None:
    X = blobs.to_pandas()
    model = Segmenter(k_range=(3, 7), sample_size=3_000, silhouette_sample=2_000).fit(X)
    assert model.k_ == 5
    assert adjusted_rand_score(X["persona"], model.labels_) >= 0.9
    # every candidate k scored, the chosen one has the best silhouette
    assert model.scores_["k"].tolist() == [3, 4, 5, 6, 7]
    best = model.scores_.loc[model.scores_["silhouette"].idxmax(), "k"]
    assert model.scores_.loc[model.scores_["chosen"], "k"].item() == best == 5
    # fitted on a sample, everyone assigned, labels_ agrees with predict
    assert len(model.labels_) == len(X)
    np.testing.assert_array_equal(model.labels_, model.predict(X))
    assert model.centroids_.shape == (5, len(model.feature_names_out_))


def test_deterministic_for_a_seed(blobs: pl.DataFrame) -> None:
    X = blobs.head(1_500).to_pandas()
    a = Segmenter(k=4, sample_size=1_000, random_state=7).fit(X)
    b = Segmenter(k=4, sample_size=1_000, random_state=7).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.centroids_, b.centroids_)
    assert a.segment_names_ == b.segment_names_


def test_fitting_only_the_rows_fit_chooses_gives_the_same_model(blobs: pl.DataFrame) -> None:
    """What segmentation reads of a large profile: only the rows ``fit_rows`` names, fitted
    with ``population`` (everyone is then assigned a slice at a time). The model is the one
    fitting the whole frame gives: same k, centroids, names and assignments."""
    X = blobs.to_pandas()
    whole = Segmenter(k_range=(3, 6), sample_size=2_000, silhouette_sample=1_000).fit(X)
    few = Segmenter(k_range=(3, 6), sample_size=2_000, silhouette_sample=1_000)
    rows = few.fit_rows(len(X))
    assert rows is not None and rows.size == 2_000 and (np.diff(rows) > 0).all()
    few.fit(X.iloc[rows].reset_index(drop=True), population=len(X))
    assert few.k_ == whole.k_
    np.testing.assert_array_equal(few.centroids_, whole.centroids_)
    assert few.segment_names_ == whole.segment_names_
    np.testing.assert_array_equal(few.predict(X), whole.labels_)
    np.testing.assert_array_equal(few.labels_, whole.labels_[rows])  # the fitted rows' labels
    small = Segmenter(k=4, sample_size=len(X))
    assert small.fit_rows(len(X)) is None  # everyone fits: every row is read
    with pytest.raises(ValueError, match="X has 100 rows; fit_rows"):
        few.fit(X.head(100), population=len(X))


def test_absent_default_features_are_skipped(blobs: pl.DataFrame) -> None:
    X = blobs.head(800).drop("dropped_call_rate_mean_3m", "latency_ms_mean_3m").to_pandas()
    model = Segmenter(k=3).fit(X)
    assert "latency_ms_mean_3m" not in model.features_
    assert model.features_ == [
        f for f in DEFAULT_FEATURES if f not in ("dropped_call_rate_mean_3m", "latency_ms_mean_3m")
    ]


def test_configured_missing_feature_is_named(blobs: pl.DataFrame) -> None:
    X = blobs.head(200).to_pandas()
    with pytest.raises(MissingFeatureError, match=r"'churn_spirit' not in the profile"):
        Segmenter(k=3, features=["age", "churn_spirit"]).fit(X)
    model = Segmenter(k=3, features=["age", "data_mb_12m"]).fit(X)
    with pytest.raises(MissingFeatureError, match="'data_mb_12m'"):
        model.predict(X.drop(columns="data_mb_12m"))


def test_parameter_errors_carry_values(blobs: pl.DataFrame) -> None:
    X = blobs.head(5).to_pandas()
    with pytest.raises(ValueError, match=r"n_samples=5 should be > n_clusters=9"):
        Segmenter().fit(X)
    with pytest.raises(ValueError, match="algorithm='dbscan'"):
        Segmenter(algorithm="dbscan").fit(X)  # type: ignore[arg-type]


def test_sklearn_conventions_clone_and_pickle(blobs: pl.DataFrame) -> None:
    X = blobs.head(1_000).to_pandas()
    model = Segmenter(k=4, feature_weights={"age": 2.0}).fit(X)
    fresh = clone(model)
    assert fresh.get_params() == model.get_params()
    assert not hasattr(fresh, "pipeline_")
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    assert again.segment_names_ == model.segment_names_
    # weights reach the distance: age columns scaled by 2
    i = list(model.feature_names_out_).index("age")
    assert model.weights_[i] == 2.0


@pytest.mark.parametrize("algorithm", ["gmm", "bisecting_kmeans"])
def test_other_algorithms_score_and_assign(blobs: pl.DataFrame, algorithm: str) -> None:
    X = blobs.head(1_500).to_pandas()
    model = Segmenter(algorithm=algorithm, k_range=(4, 6)).fit(X)  # type: ignore[arg-type]
    assert set(model.labels_) == set(range(model.k_))
    if algorithm == "gmm":
        assert model.scores_["bic"].notna().all()
        assert model.k_ == model.scores_.loc[model.scores_["bic"].idxmin(), "k"]
    assert model.scores_["silhouette"].notna().all()
    assert adjusted_rand_score(X["persona"], model.labels_) >= 0.7
