"""The Segmenter: preprocessing and a clusterer in one sklearn Pipeline, with a k search."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import BisectingKMeans, KMeans
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.validation import check_is_fitted

from segmentation.naming import name_segments
from segmentation.preprocess import (
    DEFAULT_FEATURES,
    build_preprocessor,
    multiply_columns,
    output_weights,
    source_feature,
    split_features,
    to_model_frame,
)
from segmentation.silhouette import silhouette_scores

Algorithm = Literal["kmeans", "gmm", "bisecting_kmeans"]
ALGORITHMS: tuple[str, ...] = ("kmeans", "gmm", "bisecting_kmeans")

#: Rows per batch when assigning everyone after the fit on a sample.
PREDICT_BATCH = 200_000


class MissingFeatureError(ValueError):
    """A configured clustering feature is not a column of the profile."""


def resolve_features(columns: Sequence[str], features: Sequence[str] | None) -> list[str]:
    """The features to cluster on.

    Parameters
    ----------
    columns
        Columns of the profile.
    features
        Configured features, or None for the defaults (absent defaults are skipped: an
        optional input table was not supplied).

    Raises
    ------
    MissingFeatureError
        A configured feature is absent; the message names it and lists what is available.
    """
    present = set(columns)
    if features is None:
        chosen = [f for f in DEFAULT_FEATURES if f in present]
        if not chosen:
            raise MissingFeatureError(
                "none of the default segmentation features is in the profile "
                f"(expected some of: {', '.join(DEFAULT_FEATURES)})"
            )
        return chosen
    missing = [f for f in features if f not in present]
    if missing:
        raise MissingFeatureError(
            f"configured segmentation feature(s) {', '.join(repr(m) for m in missing)} not in "
            f"the profile (available: {', '.join(sorted(present))})"
        )
    if len(set(features)) != len(features):
        dupes = sorted({f for f in features if list(features).count(f) > 1})
        raise ValueError(f"segmentation features listed twice: {', '.join(dupes)}")
    if not features:
        raise ValueError("segmentation features must not be empty")
    return list(features)


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


class Segmenter(ClusterMixin, BaseEstimator):
    """Behavioural customer segments: preprocessing + clusterer, fitted on a bounded sample.

    Parameters
    ----------
    algorithm
        ``"kmeans"``, ``"gmm"`` (diagonal Gaussian mixture) or ``"bisecting_kmeans"``.
    k
        Number of segments, or ``"auto"`` to search ``k_range``.
    k_range
        Inclusive ``(k_min, k_max)`` searched when ``k="auto"``.
    sample_size
        Rows the models are fitted on; everyone is then assigned with ``predict`` in batches.
    silhouette_sample
        Rows used for each silhouette score (cost grows with its square).
    features
        Profile columns to cluster on; None uses the defaults present in ``X``.
    random_state
        Seed for the sample, the clusterer and the silhouette sample.
    n_init
        Initialisations per k-means fit (3 is enough on a 200k sample).
    k_tolerance
        With ``k="auto"``, the smallest k whose silhouette is within this of the best wins
        (near-equal partitions go to fewer, more stable segments). Not used for gmm (BIC).
    feature_weights
        Weights of features in the distance, on top of
        :data:`segmentation.preprocess.DEFAULT_WEIGHTS` (a categorical column's weight
        applies to each of its one-hot columns).

    Attributes
    ----------
    features_ : list of str
        Features used.
    pipeline_ : sklearn.pipeline.Pipeline
        Fitted ``preprocess`` (ColumnTransformer) + ``weight`` + ``cluster`` pipeline.
    k_ : int
        Chosen number of segments.
    scores_ : pandas.DataFrame
        One row per candidate k: ``k``, ``silhouette``, ``bic`` (gmm only, else NaN),
        ``inertia`` (k-means flavours), ``chosen``.
    labels_ : numpy.ndarray
        Cluster label (0..k_-1) of every row of the ``X`` given to ``fit``.
    centroids_ : numpy.ndarray
        ``(k_, n_transformed)`` cluster centres in the transformed (weighted) space.
    weights_ : numpy.ndarray
        Weight of each transformed column.
    feature_names_out_ : numpy.ndarray
        Names of the transformed features.
    deviations_ : pandas.DataFrame
        Standardised deviation of each cluster's members from the population (fit sample),
        per numeric feature and ``"column=value"`` category share; drives the names.
    population_mean_, population_std_ : numpy.ndarray
        Mean and standard deviation of the transformed fit sample.
    segment_ids_ : numpy.ndarray
        Stable segment id of each cluster label (``arange(k_)`` until aligned with a
        previous run, see :meth:`set_segment_ids`).
    segment_names_ : list of str
        Readable, unique name of each cluster label.
    max_segment_id_ : int
        Highest segment id ever issued in this model's lineage (fresh ids start above it).
    """

    def __init__(
        self,
        algorithm: Algorithm = "kmeans",
        k: int | Literal["auto"] = "auto",
        k_range: tuple[int, int] = (4, 9),
        sample_size: int = 200_000,
        silhouette_sample: int = 10_000,
        features: Sequence[str] | None = None,
        random_state: int | None = 0,
        n_init: int = 3,
        k_tolerance: float = 0.0,
        feature_weights: dict[str, float] | None = None,
    ) -> None:
        self.algorithm = algorithm
        self.k = k
        self.k_range = k_range
        self.sample_size = sample_size
        self.silhouette_sample = silhouette_sample
        self.features = features
        self.random_state = random_state
        self.n_init = n_init
        self.k_tolerance = k_tolerance
        self.feature_weights = feature_weights

    # --- fitting -------------------------------------------------------------------------

    def _check_params(self, n_rows: int) -> list[int]:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm={self.algorithm!r} should be one of {ALGORITHMS}")
        if self.k == "auto":
            k_min, k_max = self.k_range
            if not 2 <= k_min <= k_max:
                raise ValueError(f"k_range={self.k_range} should satisfy 2 <= k_min <= k_max")
            candidates = list(range(k_min, k_max + 1))
        elif isinstance(self.k, int | np.integer) and self.k >= 2:
            candidates = [int(self.k)]
        else:
            raise ValueError(f"k={self.k!r} should be an int >= 2 or 'auto'")
        if self.sample_size < 2 or self.silhouette_sample < 2:
            raise ValueError(
                f"sample_size={self.sample_size} and silhouette_sample="
                f"{self.silhouette_sample} should be >= 2"
            )
        n_fit = min(n_rows, self.sample_size)
        if n_fit <= max(candidates):
            raise ValueError(
                f"n_samples={n_fit} should be > n_clusters={max(candidates)} "
                f"(profile has {n_rows} rows)"
            )
        return candidates

    def _make_clusterer(self, k: int, seed: int) -> KMeans | GaussianMixture | BisectingKMeans:
        if self.algorithm == "kmeans":
            return KMeans(n_clusters=k, n_init=self.n_init, random_state=seed)
        if self.algorithm == "bisecting_kmeans":
            return BisectingKMeans(
                n_clusters=k,
                n_init=self.n_init,
                random_state=seed,
                bisecting_strategy="largest_cluster",
            )
        return GaussianMixture(
            n_components=k,
            covariance_type="diag",
            n_init=1,
            reg_covar=1e-4,
            random_state=seed,
            init_params="k-means++",
            max_iter=200,
        )

    def fit_rows(self, n: int) -> np.ndarray | None:
        """The positions (sorted) of the rows :meth:`fit` fits on of a profile of ``n`` rows;
        None when it fits on all of them (``n <= sample_size``). Fitting on those rows alone
        with ``population=n`` gives the same model without the others in memory."""
        rng = np.random.default_rng(self.random_state)
        rng.integers(0, 2**31 - 1)  # fit() draws the clusterers' seed first
        return self._sample_rows(rng, n)

    def _sample_rows(self, rng: np.random.Generator, n: int) -> np.ndarray | None:
        if n <= self.sample_size:
            return None
        return np.sort(rng.choice(n, size=self.sample_size, replace=False))

    def fit(self, X: pd.DataFrame, y: object = None, *, population: int | None = None) -> Segmenter:
        """Fit on a bounded sample of ``X``, choose k, name the clusters, label every row.

        Parameters
        ----------
        X
            Customer profile, one row per customer (pandas).
        y
            Ignored.
        population
            When given, ``X`` holds only the rows :meth:`fit_rows` chose of a profile of that
            many rows (in order), and the model is the one ``fit`` of the whole profile gives;
            ``labels_`` then labels ``X``'s rows.

        Returns
        -------
        Segmenter
            ``self``.
        """
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X should be a pandas DataFrame, got {type(X).__name__}")
        n = len(X) if population is None else population
        candidates = self._check_params(n)
        self.features_ = resolve_features(list(X.columns), self.features)
        self.feature_names_in_ = np.asarray(self.features_, dtype=object)
        self.n_features_in_ = len(self.features_)
        rng = np.random.default_rng(self.random_state)
        seed = int(rng.integers(0, 2**31 - 1))

        rows = self._sample_rows(rng, n)
        if population is not None:
            expected = n if rows is None else rows.size
            if len(X) != expected:
                raise ValueError(f"X has {len(X)} rows; fit_rows({population}) chose {expected}")
            sample = X
        else:
            sample = X if rows is None else X.iloc[rows]
        frame = to_model_frame(sample, self.features_)
        pre = build_preprocessor(self.features_)
        Z = np.ascontiguousarray(pre.fit_transform(frame), dtype=np.float64)
        self.feature_names_out_ = np.asarray(pre.get_feature_names_out(), dtype=object)
        self.weights_ = output_weights(
            list(self.feature_names_out_), self.features_, self.feature_weights
        )
        Z *= self.weights_
        sil_idx = (
            np.sort(rng.choice(len(Z), size=self.silhouette_sample, replace=False))
            if len(Z) > self.silhouette_sample
            else np.arange(len(Z))
        )

        # float32 halves the pairwise-distance cost; the score moves by ~1e-6.
        Z_sil = Z[sil_idx].astype(np.float32)
        rows: list[dict[str, Any]] = []
        fitted: dict[int, Any] = {}
        for k in candidates:
            model = self._make_clusterer(k, seed)
            labels = model.fit_predict(Z)
            row: dict[str, Any] = {"k": k, "silhouette": float("nan")}
            row |= {"bic": float("nan"), "inertia": float("nan")}
            if isinstance(model, GaussianMixture):
                row["bic"] = float(model.bic(Z))
            else:
                row["inertia"] = float(model.inertia_)
            rows.append(row)
            fitted[k] = (model, labels)
        # every candidate's silhouette from one pass over the sample's distances
        silhouettes = silhouette_scores(Z_sil, [fitted[k][1][sil_idx] for k in candidates])
        for row, sil in zip(rows, silhouettes, strict=True):
            row["silhouette"] = sil
        scores = pd.DataFrame(rows)
        if len(candidates) == 1:
            best = candidates[0]
        elif self.algorithm == "gmm":
            best = int(scores.loc[scores["bic"].idxmin(), "k"])
        else:
            sil = scores["silhouette"].fillna(-np.inf)
            best = int(scores.loc[sil >= sil.max() - self.k_tolerance, "k"].min())
        scores["chosen"] = scores["k"] == best
        self.scores_ = scores
        model, sample_labels = fitted[best]
        self.k_ = best
        weigh = FunctionTransformer(
            multiply_columns, kw_args={"weights": self.weights_}, feature_names_out="one-to-one"
        )
        self.pipeline_ = Pipeline([("preprocess", pre), ("weight", weigh), ("cluster", model)])
        self.centroids_ = np.asarray(
            model.means_ if isinstance(model, GaussianMixture) else model.cluster_centers_,
            dtype=np.float64,
        )

        self.population_mean_ = Z.mean(axis=0)
        self.population_std_ = Z.std(axis=0)
        member_means = self._member_means(Z, sample_labels, best)
        self.deviations_ = self._deviations(member_means)
        self.segment_names_ = name_segments(
            self.deviations_,
            medians=self._deviations(self._member_medians(Z, sample_labels, best)),
            shares=self._category_shares(member_means),
        )
        self.segment_ids_ = np.arange(best, dtype=np.int64)
        self.max_segment_id_ = best - 1

        if sample is X:
            self.labels_ = np.asarray(sample_labels, dtype=np.int64)
        else:
            self.labels_ = self.predict(X)
        return self

    @staticmethod
    def _member_means(Z: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        sums = np.zeros((k, Z.shape[1]))
        np.add.at(sums, labels, Z)
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / counts[:, None]

    @staticmethod
    def _member_medians(Z: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
        out = np.full((k, Z.shape[1]), np.nan)
        for c in range(k):
            members = Z[labels == c]
            if len(members):
                out[c] = np.median(members, axis=0)
        return out

    def _category_shares(self, member_means: np.ndarray) -> pd.DataFrame:
        """Share of each cluster holding each ``"column=value"`` (its one-hot column's mean)."""
        _, _, cat = split_features(self.features_)
        shares = {}
        for j, name in enumerate(self.feature_names_out_):
            col, value = source_feature(name, cat)
            if value is not None:
                w = self.weights_[j]
                shares[f"{col}={value}"] = member_means[:, j] / w if w > 0 else np.nan
        return pd.DataFrame(shares, index=range(member_means.shape[0]))

    def _deviations(self, member_means: np.ndarray) -> pd.DataFrame:
        _, _, cat = split_features(self.features_)
        columns = []
        for name in self.feature_names_out_:
            col, value = source_feature(name, cat)
            columns.append(f"{col}={value}" if value is not None else col)
        std = np.where(self.population_std_ > 0, self.population_std_, np.inf)
        dev = (member_means - self.population_mean_) / std
        return pd.DataFrame(dev, columns=columns)

    # --- using ---------------------------------------------------------------------------

    def _check_input(self, X: pd.DataFrame) -> None:
        check_is_fitted(self, "pipeline_")
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X should be a pandas DataFrame, got {type(X).__name__}")
        missing = [f for f in self.features_ if f not in X.columns]
        if missing:
            raise MissingFeatureError(
                f"profile lacks the segmentation feature(s) the model was fitted on: "
                f"{', '.join(repr(m) for m in missing)}"
            )

    def _frames(self, X: pd.DataFrame) -> Iterator[tuple[slice, pd.DataFrame]]:
        """``X`` as the preprocessor's input, :data:`PREDICT_BATCH` rows at a time: a model
        frame of everyone at once would copy every feature column of the whole population."""
        self._check_input(X)
        for sl in _batches(len(X), PREDICT_BATCH):
            yield sl, to_model_frame(X.iloc[sl], self.features_)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """The preprocessed feature matrix of ``X`` (batched)."""
        pre = self.pipeline_[:-1]
        out = np.empty((len(X), len(self.feature_names_out_)), dtype=np.float64)
        for sl, frame in self._frames(X):
            out[sl] = pre.transform(frame)
        return out

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Cluster label (0..k_-1) of each row, assigned in batches."""
        out = np.empty(len(X), dtype=np.int64)
        for sl, frame in self._frames(X):
            out[sl] = self.pipeline_.predict(frame)
        return out

    def predict_segment_id(self, X: pd.DataFrame) -> np.ndarray:
        """Stable segment id of each row (see :attr:`segment_ids_`)."""
        return self.segment_ids_[self.predict(X)]

    def assign(self, X: pd.DataFrame) -> pd.DataFrame:
        """``segment_id`` and ``segment_name`` of each row of ``X`` (same index)."""
        labels = self.predict(X)
        names = np.asarray(self.segment_names_, dtype=object)
        return pd.DataFrame(
            {"segment_id": self.segment_ids_[labels], "segment_name": names[labels]},
            index=X.index,
        )

    def set_segment_ids(
        self, segment_ids: Sequence[int], max_segment_id: int | None = None
    ) -> None:
        """Give the clusters stable ids (from :func:`segmentation.align.align_segment_ids`).

        Parameters
        ----------
        segment_ids
            One distinct non-negative id per cluster label.
        max_segment_id
            Highest id ever issued in the lineage (default: the largest of ``segment_ids``).
        """
        check_is_fitted(self, "pipeline_")
        ids = np.asarray(segment_ids, dtype=np.int64)
        if ids.shape != (self.k_,):
            raise ValueError(f"expected {self.k_} segment ids, got {ids.shape[0]}")
        if len(np.unique(ids)) != len(ids) or (ids < 0).any():
            raise ValueError(f"segment ids must be distinct and >= 0, got {ids.tolist()}")
        self.segment_ids_ = ids
        top = int(ids.max())
        self.max_segment_id_ = max(top, max_segment_id if max_segment_id is not None else top)
