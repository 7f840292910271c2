"""ChurnModel: a churn learner (LightGBM or a logistic regression, :mod:`churn.learners`)
chosen out of time, then calibrated (Platt by default, or isotonic)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from churn.dataset import FeatureSpec
from churn.learners import (
    MAX_TREE_DEPTH,
    ChurnLearner,
    LearnerData,
    LightGBMLearner,
    Matrix,
    lgbm_params,
)
from churn.linear import LogisticLearner
from churn.metrics import binary_metrics
from crm_engine.io import slices
from features.labels import churn_label

__all__ = [
    "LEARNERS",
    "LEARNER_CLASSES",
    "MAX_TREE_DEPTH",
    "NOT_FITTED_MESSAGE",
    "PROBABILITY_CLIP",
    "Calibrator",
    "ChurnModel",
    "FrameModel",
    "iter_batches",
    "lgbm_params",
    "validation_halves",
]

LEARNER_CLASSES: dict[str, type[ChurnLearner]] = {
    cls.name: cls for cls in (LightGBMLearner, LogisticLearner)
}
"""Every churn learner by its ``name``: what a :class:`ChurnModel`'s ``learner`` can be (the
first wins a tie under ``churn.model = "auto"``)."""
LEARNERS: tuple[str, ...] = tuple(LEARNER_CLASSES)
"""The learners' names: ``("lightgbm", "logistic")``."""

PROBABILITY_CLIP = 1e-4
"""Calibrated probabilities are kept in ``[1e-4, 1 - 1e-4]``: isotonic steps can reach 0 or 1."""

SCORING_BATCH_ROWS = 250_000


NOT_FITTED_MESSAGE = "this %(name)s is not fitted yet; call fit(train, valid) first"
"""``msg`` for :func:`sklearn.utils.validation.check_is_fitted` (``%(name)s``: class name)."""


def validation_halves(frame: pl.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the validation cut's customers in two fixed halves by a hash of ``customer_id``.

    Returns
    -------
    (fit_mask, report_mask)
        ``fit_mask`` rows are used for early stopping and calibration; ``report_mask`` rows
        only for the reported out-of-time metrics. The split depends on the customer id and
        the seed, not on row order.
    """
    if "customer_id" not in frame.schema:
        raise ValueError("the validation frame needs a customer_id column")
    h = frame.select(
        (pl.col("customer_id").cast(pl.String).hash(seed=seed) % 2 == 0).alias("h")
    ).to_series()
    fit_mask = h.to_numpy()
    return fit_mask, ~fit_mask


def iter_batches(
    frame: pl.DataFrame | pl.LazyFrame, rows: int | None = None
) -> Iterator[pl.DataFrame]:
    """:func:`crm_engine.io.slices` of at most ``rows`` rows (default
    :data:`SCORING_BATCH_ROWS`: bounded memory for the learner's matrix)."""
    return slices(frame, rows or SCORING_BATCH_ROWS)


@dataclass
class Calibrator:
    """Maps raw model probabilities to calibrated ones.

    ``isotonic``: monotone step function (stored as its breakpoints, applied with linear
    interpolation and clipping like scikit-learn's ``IsotonicRegression``); ``platt``: logistic
    regression on the raw log-odds; ``identity``: no change.
    """

    method: Literal["isotonic", "platt", "identity"] = "identity"
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    coef: float = 1.0
    intercept: float = 0.0

    @classmethod
    def fit(
        cls, method: Literal["isotonic", "platt"], raw: np.ndarray, y: np.ndarray
    ) -> Calibrator:
        """Fit on raw probabilities ``raw`` and outcomes ``y`` (scikit-learn estimators)."""
        raw = np.asarray(raw, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
            return cls(
                method="isotonic",
                x=[float(v) for v in iso.X_thresholds_],
                y=[float(v) for v in iso.y_thresholds_],
            )
        if method == "platt":
            from sklearn.linear_model import LogisticRegression

            if np.unique(y).size < 2:
                raise ValueError("Platt calibration needs both outcomes in the calibration set")
            lr = LogisticRegression(C=1e6).fit(_logit(raw).reshape(-1, 1), y.astype(np.int8))
            return cls(
                method="platt", coef=float(lr.coef_[0, 0]), intercept=float(lr.intercept_[0])
            )
        raise ValueError(f"calibration={method!r} should be 'isotonic' or 'platt'")

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, clipped to ``[PROBABILITY_CLIP, 1 - PROBABILITY_CLIP]``."""
        raw = np.asarray(raw, dtype=np.float64)
        if self.method == "isotonic":
            out = np.interp(raw, np.asarray(self.x), np.asarray(self.y))
        elif self.method == "platt":
            out = 1.0 / (1.0 + np.exp(-(self.coef * _logit(raw) + self.intercept)))
        else:
            out = raw
        return np.clip(out, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "x": self.x,
            "y": self.y,
            "coef": self.coef,
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibrator:
        return cls(**d)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


class FrameModel(BaseEstimator):
    """What the churn and loyalty models share: feature spec, a learner, batching, persistence.

    A scikit-learn estimator: ``__init__`` stores the hyperparameters under their own names
    and nothing else (so ``get_params``, ``set_params`` and ``sklearn.base.clone`` work);
    checks happen in ``fit``, and everything ``fit`` learns ends in ``_``. Subclasses set
    ``_kind``, say which learner class they hold (:meth:`_learner_class`) and implement ``fit``
    (which sets ``feature_spec_`` and ``learner_``) and the prediction methods.
    """

    _kind: str = "base"

    def __init__(
        self,
        lgbm_params: Mapping[str, Any] | None = None,
        early_stopping_rounds: int | None = 30,
        extra_features: Sequence[str] = (),
        seed: int = 0,
        features: Sequence[str] | None = None,
    ) -> None:
        self.lgbm_params = lgbm_params
        self.early_stopping_rounds = early_stopping_rounds
        self.extra_features = extra_features
        self.seed = seed
        self.features = features

    # -- shared pieces -------------------------------------------------------------------------

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted once ``fit`` (or :meth:`load`) has set the feature spec and the learner."""
        return hasattr(self, "feature_spec_") and hasattr(self, "learner_")

    def _learner_class(self) -> type[ChurnLearner]:
        raise NotImplementedError

    @property
    def feature_names_in_(self) -> list[str]:
        check_is_fitted(self, "feature_spec_", msg=NOT_FITTED_MESSAGE)
        return self.feature_spec_.feature_names

    @property
    def n_features_in_(self) -> int:
        return len(self.feature_names_in_)

    @property
    def best_iteration_(self) -> int:
        """Trees kept (0 for the logistic regression)."""
        return self.learner_.best_iteration_

    @property
    def params_(self) -> dict[str, Any]:
        """What the learner was fitted with (:meth:`ChurnLearner.describe_params`)."""
        return self.learner_.describe_params()

    def _per_batch(
        self,
        frame: pl.DataFrame | pl.LazyFrame,
        learner_method: Callable[[Matrix], np.ndarray],
    ) -> np.ndarray:
        """``learner_method`` over the feature matrix of ``frame``, batch by batch."""
        # Only what the learner needs: fit calls this before it has fitted a calibrator.
        check_is_fitted(self, ("feature_spec_", "learner_"), msg=NOT_FITTED_MESSAGE)
        matrix = self.learner_.matrix
        parts = [learner_method(matrix(self.feature_spec_, batch)) for batch in iter_batches(frame)]
        return np.concatenate(parts, axis=0) if parts else np.empty(0)

    def _raw_predict(self, frame: pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        return self._per_batch(frame, lambda x: self.learner_.predict_raw(x))

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _set_extra_state(self, state: Mapping[str, Any]) -> None:
        return None

    def save(self, directory: Path) -> None:
        """Write the fitted model to ``directory`` (the learner's files, feature spec, state JSON).

        ``state.json`` holds ``get_params()`` under ``init``: :meth:`load` rebuilds the
        estimator from them.
        """
        check_is_fitted(self, msg=NOT_FITTED_MESSAGE)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.learner_.save(directory)
        (directory / "features.json").write_text(self.feature_spec_.to_json())
        init = self.get_params(deep=False)
        init["lgbm_params"] = None if self.lgbm_params is None else dict(self.lgbm_params)
        init["extra_features"] = list(self.extra_features)
        init["features"] = None if self.features is None else list(self.features)
        state = {
            "kind": self._kind,
            "init": init,
            "best_iteration": self.best_iteration_,
            "metrics": getattr(self, "metrics_", {}),
            **self._extra_state(),
        }
        (directory / "state.json").write_text(json.dumps(state))

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a model written by :meth:`save`."""
        directory = Path(directory)
        state = json.loads((directory / "state.json").read_text())
        if state.get("kind") != cls._kind:
            raise ValueError(
                f"{directory} holds a {state.get('kind')!r} model, not a {cls._kind!r} model"
            )
        init = dict(state["init"])
        init["extra_features"] = tuple(init.get("extra_features", ()))
        model = cls(**init)
        model.feature_spec_ = FeatureSpec.from_json((directory / "features.json").read_text())
        model.learner_ = model._learner_class().load(directory)
        model.metrics_ = state.get("metrics", {})
        model._set_extra_state(state)
        return model


class ChurnModel(FrameModel):
    """Probability that a customer churns within ``horizon_days`` of the cut.

    ``fit(train, valid)`` takes two profile frames at different cuts, each with the label
    column ``churned_within_<horizon_days>d``: the learner is trained on ``train``; the
    validation cut's customers are split in two fixed halves by a hash of ``customer_id``;
    the first half chooses the number of trees (early stopping) or the regularisation and fits
    the calibrator, the second half, untouched until then, gives the out-of-time metrics in
    ``metrics_``.

    Parameters
    ----------
    horizon_days
        Label horizon: the label column is ``churned_within_<horizon_days>d``.
    lgbm_params
        Passed to ``lightgbm.LGBMClassifier`` (``max_depth`` capped at ``MAX_TREE_DEPTH``);
        :func:`churn.train_churn` passes ``ChurnConfig.lightgbm.model_dump()``.
    early_stopping_rounds
        Rounds without improvement of the validation log-loss before stopping.
    calibration
        ``"isotonic"`` or ``"platt"``.
    extra_features
        Extra frame columns to use (numeric dtypes numeric, others categorical).
    seed
        Seeds the learner and the validation split.
    features
        The profile's feature columns (``features.model_features`` of its declared schema);
        every one must be in the training frame. None: the default profile's features the
        frame has.
    learner
        A name of :data:`churn.learners.LEARNER_CLASSES`: ``"lightgbm"`` (trees,
        ``lgbm_params``) or ``"logistic"`` (an L2 logistic regression, :mod:`churn.linear`,
        whose ``C`` the early-stopping half chooses; ``lgbm_params`` unused).

    Attributes
    ----------
    feature_spec_ : FeatureSpec
    learner_ : churn.learners.ChurnLearner
        The fitted learner (:class:`churn.learners.LightGBMLearner` or
        :class:`churn.linear.LogisticLearner`).
    params_ : dict[str, Any]
        The parameters passed to LightGBM (``lgbm_params`` with the depth capped and the seed),
        or the logistic regression's ``C`` and training rows.
    best_iteration_ : int
        Trees kept (0 for the logistic regression).
    calibrator_ : Calibrator
    metrics_ : dict[str, float]
        Out-of-time metrics on the report half (calibrated probabilities; ``raw_`` prefixed
        ones for the uncalibrated model), plus ``train_rows``, ``valid_rows`` and
        ``selection_roc_auc`` (the early-stopping half's, on which ``churn.model = "auto"``
        chooses: the report half stays unseen).
    report_y_, report_p_ : numpy.ndarray
        Report-half outcomes and calibrated predictions (for plots).
    """

    _kind = "churn"

    def __init__(
        self,
        horizon_days: int = 90,
        lgbm_params: Mapping[str, Any] | None = None,
        early_stopping_rounds: int = 30,
        calibration: Literal["isotonic", "platt"] = "platt",
        extra_features: Sequence[str] = (),
        seed: int = 0,
        features: Sequence[str] | None = None,
        learner: Literal["lightgbm", "logistic"] = "lightgbm",
    ) -> None:
        super().__init__(
            lgbm_params=lgbm_params,
            early_stopping_rounds=early_stopping_rounds,
            extra_features=extra_features,
            seed=seed,
            features=features,
        )
        self.horizon_days = horizon_days
        self.calibration = calibration
        self.learner = learner

    def __sklearn_is_fitted__(self) -> bool:
        return super().__sklearn_is_fitted__() and hasattr(self, "calibrator_")

    def _learner_class(self) -> type[ChurnLearner]:
        if self.learner not in LEARNER_CLASSES:
            raise ValueError(f"learner={self.learner!r} should be one of {LEARNERS}")
        return LEARNER_CLASSES[self.learner]

    @property
    def label_(self) -> str:
        return churn_label(self.horizon_days)

    def _labels(self, frame: pl.DataFrame, name: str) -> np.ndarray:
        if self.label_ not in frame.schema:
            raise ValueError(f"the {name} frame has no label column {self.label_!r}")
        y = frame.get_column(self.label_)
        if y.null_count():
            raise ValueError(
                f"the {name} frame has {y.null_count()} null values in {self.label_!r}"
            )
        return y.cast(pl.Int8).to_numpy()

    def fit(self, train: pl.DataFrame, valid: pl.DataFrame) -> Self:
        """Train on ``train``, stop and calibrate on half of ``valid``, report on the other half.

        Returns
        -------
        self
        """
        if self.calibration not in ("isotonic", "platt"):
            raise ValueError(f"calibration={self.calibration!r} should be 'isotonic' or 'platt'")
        learner_class = self._learner_class()
        y_train = self._labels(train, "training")
        y_valid = self._labels(valid, "validation")
        if np.unique(y_train).size < 2:
            raise ValueError(
                f"the training frame has only one class in {self.label_!r} "
                f"(n_rows={train.height}); need churners and stayers"
            )
        fit_mask, report_mask = validation_halves(valid, self.seed)
        if fit_mask.sum() == 0 or report_mask.sum() == 0:
            raise ValueError(f"validation frame too small to split: n_rows={valid.height}")
        self.feature_spec_ = FeatureSpec.from_frame(train, self.extra_features, self.features)
        rows = learner_class.training_rows(train.height, self.seed)
        x_train = learner_class.matrix(self.feature_spec_, train if rows is None else train[rows])
        y_fit = y_train if rows is None else y_train[rows]
        v_fit, v_rep = valid.filter(pl.Series(fit_mask)), valid.filter(pl.Series(report_mask))
        x_stop = learner_class.matrix(self.feature_spec_, v_fit)
        learner = learner_class(self.lgbm_params, self.early_stopping_rounds, self.seed)
        self.learner_ = learner.fit(
            LearnerData(x_train, y_fit, x_stop, y_valid[fit_mask], self.feature_spec_)
        )
        del x_train, x_stop
        raw_fit = self._raw_predict(v_fit)
        self.calibrator_ = Calibrator.fit(self.calibration, raw_fit, y_valid[fit_mask])
        selection = binary_metrics(y_valid[fit_mask], raw_fit)["roc_auc"]
        raw_rep = self._raw_predict(v_rep)
        p_rep = self.calibrator_.transform(raw_rep)
        y_rep = y_valid[report_mask]
        metrics = binary_metrics(y_rep, p_rep)
        metrics |= {
            f"raw_{k}": v
            for k, v in binary_metrics(y_rep, raw_rep).items()
            if k in ("roc_auc", "brier", "log_loss", "mean_prediction")
        }
        metrics |= {
            "train_rows": float(train.height),
            "train_base_rate": float(y_train.mean()),
            "valid_rows": float(valid.height),
            "calibration_rows": float(fit_mask.sum()),
            "best_iteration": float(self.best_iteration_),
            "selection_roc_auc": float(selection),
        }
        self.metrics_: dict[str, float] = metrics
        self.report_y_ = y_rep
        self.report_p_ = p_rep
        return self

    def predict_raw(self, frame: pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        """Uncalibrated learner probabilities, shape ``(n,)``."""
        check_is_fitted(self, msg=NOT_FITTED_MESSAGE)
        return self._raw_predict(frame)

    def predict_churn(self, frame: pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        """Calibrated churn probabilities, shape ``(n,)``."""
        check_is_fitted(self, msg=NOT_FITTED_MESSAGE)
        return self.calibrator_.transform(self._raw_predict(frame))

    def predict_proba(self, frame: pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        """scikit-learn style ``(n, 2)``: columns P(stay), P(churn), calibrated."""
        p = self.predict_churn(frame)
        return np.column_stack([1.0 - p, p])

    def contributions(self, frame: pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        """Contributions to the raw log-odds, ``(n, n_features + 1)`` (last = bias): TreeSHAP
        for trees, weight x (value - training mean) for the logistic regression."""
        check_is_fitted(self, msg=NOT_FITTED_MESSAGE)
        return self._per_batch(frame, lambda x: self.learner_.contributions(x))

    def _extra_state(self) -> dict[str, Any]:
        return {"calibrator": self.calibrator_.to_dict()}

    def _set_extra_state(self, state: Mapping[str, Any]) -> None:
        self.calibrator_ = Calibrator.from_dict(state["calibrator"])
