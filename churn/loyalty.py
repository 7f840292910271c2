"""LoyaltyModel: promoter / passive / detractor from the profile, a 3-class LightGBM model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.utils.validation import check_is_fitted

from churn.dataset import FeatureSpec
from churn.learners import LearnerData, LightGBMLearner
from churn.metrics import multiclass_metrics
from churn.model import NOT_FITTED_MESSAGE, FrameModel, validation_halves
from features.labels import LOYALTY_CLASSES

LOYALTY_LABEL = "loyalty_class"


def _sorted_classes() -> tuple[str, ...]:
    """:attr:`LoyaltyModel.classes_`: the label values sorted, as scikit-learn orders classes_.

    ``("detractor", "passive", "promoter")``: the booster's class indices, so also the order
    of every loyalty model saved so far.
    """
    return tuple(sorted(LOYALTY_CLASSES))


class LoyaltyModel(FrameModel):
    """Probabilities of the next survey answer being detractor / passive / promoter.

    Trained only on customers with a survey in the label window (``loyalty_class`` not null):
    ``fit(train, valid)`` trains on the earlier cut, early-stops on one half of the later
    cut's customers (hash of ``customer_id``) and reports on the other half, out of time.

    Parameters
    ----------
    lgbm_params, extra_features, seed
        As for :class:`churn.ChurnModel`.
    early_stopping_rounds
        As for :class:`churn.ChurnModel`; None grows all ``n_estimators`` trees (the
        pipeline's default, ``[loyalty] early_stopping_rounds``: the half of the validation
        cut's survey answers that would choose the tree count is a few dozen customers, and the
        promoter probabilities of the least loyal customers move with that choice; an L2
        penalty on the leaf values, ``reg_lambda``, bounds the fit instead).

    Attributes
    ----------
    classes_ : tuple[str, ...]
        ``("detractor", "passive", "promoter")``: column order of :meth:`predict_proba`
        (the values of ``features.labels.LOYALTY_CLASSES``, sorted; index by name, e.g.
        ``classes_.index("promoter")``, not by position in ``LOYALTY_CLASSES``).
    metrics_ : dict[str, float]
        Out-of-time multi-class log-loss, accuracy and one-vs-rest AUC per class.
    """

    _kind = "loyalty"  # its hyperparameters are FrameModel's, so is its __init__

    @staticmethod
    def _surveyed(
        frame: pl.DataFrame, name: str, classes: tuple[str, ...]
    ) -> tuple[pl.DataFrame, np.ndarray]:
        if LOYALTY_LABEL not in frame.schema:
            raise ValueError(f"the {name} frame has no label column {LOYALTY_LABEL!r}")
        labelled = frame.filter(pl.col(LOYALTY_LABEL).is_not_null())
        labels = labelled.get_column(LOYALTY_LABEL).cast(pl.String)
        unknown = labels.filter(~labels.is_in(list(classes))).unique().to_list()
        if unknown:
            raise ValueError(
                f"{LOYALTY_LABEL} in the {name} frame has values {unknown[:5]} outside "
                f"{list(classes)}"
            )
        codes = labels.replace_strict(
            list(classes), list(range(len(classes))), return_dtype=pl.Int32
        ).to_numpy()
        return labelled, codes

    def fit(self, train: pl.DataFrame, valid: pl.DataFrame) -> Self:
        """Fit on surveyed customers of ``train``; stop on and evaluate with ``valid``.

        Returns
        -------
        self
        """
        classes = _sorted_classes()
        tr, y_train = self._surveyed(train, "training", classes)
        va, y_valid = self._surveyed(valid, "validation", classes)
        present = np.unique(y_train)
        if present.size < len(classes):
            missing = [c for i, c in enumerate(classes) if i not in present]
            raise ValueError(
                f"training frame has no {missing} in {LOYALTY_LABEL} among "
                f"{tr.height} surveyed customers; need all of {list(classes)}"
            )
        fit_mask, report_mask = validation_halves(va, self.seed)
        if fit_mask.sum() == 0 or report_mask.sum() == 0:
            raise ValueError(
                f"validation frame has too few surveyed customers to split: {va.height}"
            )
        self.classes_ = classes
        self.feature_spec_ = FeatureSpec.from_frame(train, self.extra_features, self.features)
        v_fit, v_rep = va.filter(pl.Series(fit_mask)), va.filter(pl.Series(report_mask))
        self.learner_ = LightGBMLearner(
            self.lgbm_params,
            self.early_stopping_rounds,
            self.seed,
            objective={"objective": "multiclass", "num_class": len(classes)},
        ).fit(
            LearnerData(
                LightGBMLearner.matrix(self.feature_spec_, tr),
                y_train,
                LightGBMLearner.matrix(self.feature_spec_, v_fit),
                y_valid[fit_mask],
                self.feature_spec_,
            )
        )
        proba = self.predict_proba(v_rep)
        labels = np.asarray(classes, dtype=object)[y_valid[report_mask]]
        self.metrics_: dict[str, float] = multiclass_metrics(labels, proba, classes) | {
            "train_rows": float(tr.height),
            "valid_rows": float(va.height),
            "best_iteration": float(self.best_iteration_),
        }
        self.report_y_ = labels
        self.report_proba_ = proba
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return super().__sklearn_is_fitted__() and hasattr(self, "classes_")

    def _learner_class(self) -> type[LightGBMLearner]:
        return LightGBMLearner

    @property
    def booster_(self) -> lgb.Booster:
        """The fitted LightGBM booster."""
        return self.learner_.booster_

    def predict_proba(self, frame: pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        """``(n, 3)`` probabilities in :attr:`classes_` order."""
        check_is_fitted(self, msg=NOT_FITTED_MESSAGE)
        p = self._raw_predict(frame)
        return p.reshape(-1, len(self.classes_))

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Most probable class per row (strings)."""
        proba = self.predict_proba(frame)
        return np.asarray(self.classes_, dtype=object)[proba.argmax(axis=1)]

    def _extra_state(self) -> dict[str, Any]:
        return {"classes": list(self.classes_)}

    def _set_extra_state(self, state: Mapping[str, Any]) -> None:
        # state.json files written before classes_ was stored used the same sorted order
        self.classes_ = tuple(state.get("classes", _sorted_classes()))
