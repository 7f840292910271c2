"""The churn learners behind one protocol, :class:`ChurnLearner`: LightGBM trees (here) and a
logistic regression (:class:`churn.linear.LogisticLearner`).

:class:`churn.ChurnModel` holds one learner (``learner_``) and never asks which: it builds the
feature matrices, chooses the early-stopping and report halves, calibrates and stores; the
learner fits the matrices, predicts raw probabilities, explains them in log-odds and stores what
it learnt as data. A new learner is a subclass and a line in ``churn.model.LEARNER_CLASSES``.
"""

from __future__ import annotations

import abc
import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
import polars as pl

from churn.dataset import FeatureSpec
from crm_engine.threads import thread_count

__all__ = [
    "DEFAULT_DEPTH",
    "MAX_TREE_DEPTH",
    "ChurnLearner",
    "LearnerData",
    "LightGBMLearner",
    "lgbm_params",
]

MAX_TREE_DEPTH = 8
"""Deepest trees allowed: ``pred_contrib`` (TreeSHAP) cost grows with depth."""

DEFAULT_DEPTH = 6
BOOSTER_FILE = "booster.txt"


Matrix = np.ndarray | pd.DataFrame
"""A learner's feature matrix (:meth:`ChurnLearner.matrix`)."""


@dataclass(frozen=True)
class LearnerData:
    """What a learner fits on: the training rows and the validation cut's early-stopping half,
    as its :meth:`ChurnLearner.matrix` (numeric columns, then categorical ones with the stored
    training categories), with their outcomes (0/1, or class indices)."""

    x_train: Matrix
    y_train: np.ndarray
    x_stop: Matrix
    y_stop: np.ndarray
    spec: FeatureSpec


class ChurnLearner(abc.ABC):
    """What a churn model needs of its learner: fit, raw probabilities, log-odds contributions,
    the parameters it used, and storage as data (no pickle).

    ``__init__`` stores the model's hyperparameters (each learner uses those that apply to it);
    what :meth:`fit` learns ends in ``_``.

    Parameters
    ----------
    lgbm_params
        LightGBM's parameters (see :func:`lgbm_params`).
    early_stopping_rounds
        Rounds without improvement on the stopping half before the trees stop; None: all.
    seed
        Seeds the fit.
    """

    name: ClassVar[str]
    """The ``learner`` value of :class:`churn.ChurnModel` (``churn.model`` in the config)."""
    param_prefix: ClassVar[str]
    """The prefix of :meth:`describe_params` in the logged run parameters (``lgbm.max_depth``)."""
    best_iteration_: int
    """Trees kept (0 for a learner without trees); set by :meth:`fit` and :meth:`load`."""

    def __init__(
        self,
        lgbm_params: Mapping[str, Any] | None = None,
        early_stopping_rounds: int | None = 30,
        seed: int = 0,
    ) -> None:
        self.lgbm_params = lgbm_params
        self.early_stopping_rounds = early_stopping_rounds
        self.seed = seed

    @staticmethod
    def matrix(spec: FeatureSpec, frame: pl.DataFrame) -> Matrix:
        """The matrix the learner reads of a profile frame: :meth:`FeatureSpec.to_pandas`
        (categories as ``category`` columns), unless the learner says otherwise."""
        return spec.to_pandas(frame)

    @staticmethod
    def training_rows(n: int, seed: int) -> np.ndarray | None:
        """Which of ``n`` training rows the learner fits on (None: all of them); the model
        builds the matrix of those rows only."""
        return None

    @abc.abstractmethod
    def fit(self, data: LearnerData) -> Self:
        """Fit on the training rows; the stopping half chooses the model's size or penalty."""

    @abc.abstractmethod
    def predict_raw(self, x: Matrix) -> np.ndarray:
        """Uncalibrated probabilities, shape ``(n,)`` (``(n, n_classes)`` for several classes)."""

    @abc.abstractmethod
    def contributions(self, x: Matrix) -> np.ndarray:
        """Contributions to the raw log-odds, ``(n, n_features + 1)``; the last is the bias."""

    @abc.abstractmethod
    def describe_params(self) -> dict[str, Any]:
        """The parameters the fit used or chose (logged with the model's metrics)."""

    @abc.abstractmethod
    def save(self, directory: Path) -> None:
        """Write what the fit learnt to ``directory`` as data."""

    @classmethod
    @abc.abstractmethod
    def load(cls, directory: Path) -> Self:
        """Read a learner written by :meth:`save`."""


def lgbm_params(params: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """LightGBM parameters with the tree depth capped, a seed, the engine's thread count
    (:func:`crm_engine.threads.thread_count`), column-wise histograms and LightGBM's chatter
    off.

    A missing, non-positive or too large ``max_depth`` is replaced (``pred_contrib`` runs in
    time proportional to tree depth), with a ``UserWarning`` when the user asked otherwise.
    """
    out = dict(params)
    depth = out.get("max_depth")
    if depth is None:
        out["max_depth"] = DEFAULT_DEPTH
    elif int(depth) <= 0 or int(depth) > MAX_TREE_DEPTH:
        warnings.warn(
            f"lgbm_params max_depth={depth} is not in [1, {MAX_TREE_DEPTH}]; using "
            f"{MAX_TREE_DEPTH} so that explanations stay fast",
            UserWarning,
            stacklevel=3,  # the model's fit, through LightGBMLearner.fit
        )
        out["max_depth"] = MAX_TREE_DEPTH
    out["random_state"] = seed
    out["n_jobs"] = thread_count()
    out.setdefault("verbose", -1)
    out.setdefault("n_estimators", 500)
    # Column-wise histograms: LightGBM's own test picks row-wise for our frames, but row-wise
    # copies its multi-value bin for every tree's feature subset (colsample_bytree < 1). On the
    # 1M operator's 499,001 training rows the same 591 trees took 47 s of CPU against 71 s.
    out.setdefault("force_col_wise", True)
    return out


class LightGBMLearner(ChurnLearner):
    """Gradient-boosted trees (``lightgbm.LGBMClassifier``), early-stopped on the stopping half.

    Also the loyalty model's learner, with a multi-class ``objective``: ``predict_raw`` then
    returns ``(n, n_classes)`` probabilities.

    Parameters
    ----------
    lgbm_params, early_stopping_rounds, seed
        As for :class:`ChurnLearner`: passed to ``lightgbm.LGBMClassifier`` through
        :func:`lgbm_params` (depth capped); None ``early_stopping_rounds`` grows all
        ``n_estimators`` trees.
    objective
        LightGBM's objective parameters (default: binary).

    Attributes
    ----------
    booster_ : lightgbm.Booster
    best_iteration_ : int
        Trees kept.
    params_ : dict[str, Any]
        The parameters passed to LightGBM (empty for a loaded model: the booster file keeps
        them under LightGBM's own names, ``booster_.params``).
    """

    name: ClassVar[str] = "lightgbm"
    param_prefix: ClassVar[str] = "lgbm"

    def __init__(
        self,
        lgbm_params: Mapping[str, Any] | None = None,
        early_stopping_rounds: int | None = 30,
        seed: int = 0,
        objective: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(lgbm_params, early_stopping_rounds, seed)
        self.objective = objective

    @staticmethod
    def matrix(spec: FeatureSpec, frame: pl.DataFrame) -> Matrix:
        """:meth:`FeatureSpec.to_matrix`: a float64 array LightGBM reads without a copy."""
        return spec.to_matrix(frame)

    def fit(self, data: LearnerData) -> Self:
        """Fit the booster on the training rows; with ``early_stopping_rounds`` (not None) stop
        on the stopping half, without it grow all ``n_estimators`` trees."""
        objective = self.objective or {"objective": "binary"}
        params = lgbm_params(self.lgbm_params or {}, self.seed) | dict(objective)
        clf = lgb.LGBMClassifier(**params)
        stopping: dict[str, Any] = {}
        if self.early_stopping_rounds is not None:
            # lightgbm >= 4.7 takes eval_X/eval_y and deprecates eval_set; older: eval_set.
            stopping = (
                {"eval_X": (data.x_stop,), "eval_y": (data.y_stop,)}
                if "eval_X" in inspect.signature(clf.fit).parameters
                else {"eval_set": [(data.x_stop, data.y_stop)]}
            )
            stopping["callbacks"] = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
        categorical = list(data.spec.categorical) or "auto"
        clf.fit(
            data.x_train,
            data.y_train,
            feature_name=data.spec.feature_names,
            categorical_feature=categorical,
            **stopping,
        )
        self.params_ = params
        self.booster_: lgb.Booster = clf.booster_
        best = clf.best_iteration_
        self.best_iteration_ = int(best) if best else int(clf.booster_.current_iteration())
        return self

    def _predict(self, x: Matrix, **kwargs: Any) -> np.ndarray:
        return np.asarray(
            self.booster_.predict(
                x, num_iteration=self.best_iteration_, num_threads=thread_count(), **kwargs
            )
        )

    def predict_raw(self, x: Matrix) -> np.ndarray:
        return self._predict(x)

    def contributions(self, x: Matrix) -> np.ndarray:
        """TreeSHAP (``pred_contrib``)."""
        return self._predict(x, pred_contrib=True)

    def describe_params(self) -> dict[str, Any]:
        return dict(self.params_)

    def save(self, directory: Path) -> None:
        self.booster_.save_model(directory / BOOSTER_FILE, num_iteration=self.best_iteration_)

    @classmethod
    def load(cls, directory: Path) -> Self:
        learner = cls()
        learner.booster_ = lgb.Booster(model_file=str(Path(directory) / BOOSTER_FILE))
        learner.best_iteration_ = int(learner.booster_.current_iteration())
        learner.params_ = {}
        return learner
