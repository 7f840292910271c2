"""LoyaltyModel: promoter / passive / detractor from the profile, a 3-class LightGBM model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import polars as pl
from sklearn.utils.validation import check_is_fitted

from churn.dataset import FeatureSpec
from churn.metrics import multiclass_metrics
from churn.model import NOT_FITTED_MESSAGE, LGBMFrameModel, validation_halves

LOYALTY_CLASSES: tuple[str, ...] = ("detractor", "passive", "promoter")
LOYALTY_LABEL = "loyalty_class"


class LoyaltyModel(LGBMFrameModel):
    """Probabilities of the next survey answer being detractor / passive / promoter.

    Trained only on customers with a survey in the label window (``loyalty_class`` not null):
    ``fit(train, valid)`` trains on the earlier cut, early-stops on one half of the later
    cut's customers (hash of ``customer_id``) and reports on the other half, out of time.

    Parameters
    ----------
    lgbm_params, early_stopping_rounds, extra_features, seed
        As for :class:`churn.ChurnModel`.

    Attributes
    ----------
    classes_ : tuple[str, ...]
        ``("detractor", "passive", "promoter")``: column order of :meth:`predict_proba`.
    metrics_ : dict[str, float]
        Out-of-time multi-class log-loss, accuracy and one-vs-rest AUC per class.
    """

    _kind = "loyalty"

    def __init__(
        self,
        lgbm_params: Mapping[str, Any] | None = None,
        early_stopping_rounds: int = 30,
        extra_features: Sequence[str] = (),
        seed: int = 0,
    ) -> None:
        super().__init__(
            lgbm_params=lgbm_params,
            early_stopping_rounds=early_stopping_rounds,
            extra_features=extra_features,
            seed=seed,
        )

    classes_: tuple[str, ...] = LOYALTY_CLASSES

    @staticmethod
    def _surveyed(frame: pl.DataFrame, name: str) -> tuple[pl.DataFrame, np.ndarray]:
        if LOYALTY_LABEL not in frame.schema:
            raise ValueError(f"the {name} frame has no label column {LOYALTY_LABEL!r}")
        labelled = frame.filter(pl.col(LOYALTY_LABEL).is_not_null())
        labels = labelled.get_column(LOYALTY_LABEL).cast(pl.String)
        unknown = labels.filter(~labels.is_in(list(LOYALTY_CLASSES))).unique().to_list()
        if unknown:
            raise ValueError(
                f"{LOYALTY_LABEL} in the {name} frame has values {unknown[:5]} outside "
                f"{list(LOYALTY_CLASSES)}"
            )
        codes = labels.replace_strict(
            list(LOYALTY_CLASSES), list(range(len(LOYALTY_CLASSES))), return_dtype=pl.Int32
        ).to_numpy()
        return labelled, codes

    def fit(self, train: pl.DataFrame, valid: pl.DataFrame) -> Self:
        """Fit on surveyed customers of ``train``; stop on and evaluate with ``valid``.

        Returns
        -------
        self
        """
        tr, y_train = self._surveyed(train, "training")
        va, y_valid = self._surveyed(valid, "validation")
        present = np.unique(y_train)
        if present.size < len(LOYALTY_CLASSES):
            missing = [c for i, c in enumerate(LOYALTY_CLASSES) if i not in present]
            raise ValueError(
                f"training frame has no {missing} in {LOYALTY_LABEL} among "
                f"{tr.height} surveyed customers; need all of {list(LOYALTY_CLASSES)}"
            )
        fit_mask, report_mask = validation_halves(va, self.seed)
        if fit_mask.sum() == 0 or report_mask.sum() == 0:
            raise ValueError(
                f"validation frame has too few surveyed customers to split: {va.height}"
            )
        self.feature_spec_ = FeatureSpec.from_frame(train, self.extra_features)
        v_fit, v_rep = va.filter(pl.Series(fit_mask)), va.filter(pl.Series(report_mask))
        self._fit_booster(
            self.feature_spec_.to_pandas(tr),
            y_train,
            self.feature_spec_.to_pandas(v_fit),
            y_valid[fit_mask],
            {"objective": "multiclass", "num_class": len(LOYALTY_CLASSES)},
        )
        proba = self.predict_proba(v_rep)
        labels = np.asarray(LOYALTY_CLASSES, dtype=object)[y_valid[report_mask]]
        self.metrics_: dict[str, float] = multiclass_metrics(labels, proba, LOYALTY_CLASSES) | {
            "train_rows": float(tr.height),
            "valid_rows": float(va.height),
            "best_iteration": float(self.best_iteration_),
        }
        self.report_y_ = labels
        self.report_proba_ = proba
        return self

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        """``(n, 3)`` probabilities in :attr:`classes_` order."""
        check_is_fitted(self, msg=NOT_FITTED_MESSAGE)
        p = self._raw_predict(frame)
        return p.reshape(-1, len(LOYALTY_CLASSES))

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Most probable class per row (strings)."""
        return np.asarray(LOYALTY_CLASSES, dtype=object)[self.predict_proba(frame).argmax(axis=1)]
