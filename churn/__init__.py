"""Churn and loyalty models: LightGBM training out of time, calibration, drivers, scoring.

The MLflow helpers (``log_churn_model``, ``load_churn_model``, ...) live in ``churn.pyfunc``
and are imported on first use, since importing mlflow costs about 1.5 s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sklearn.exceptions import NotFittedError

from churn.dataset import FeatureSpec
from churn.drivers import (
    Quartiles,
    driver_reasons,
    global_importance,
    population_quartiles,
    reason_text,
    select_for_drivers,
    top_drivers,
)
from churn.learners import ChurnLearner, LightGBMLearner
from churn.linear import LogisticLearner
from churn.loyalty import LoyaltyModel
from churn.metrics import (
    binary_metrics,
    lift_at,
    lift_curve,
    multiclass_metrics,
    reliability_curve,
)
from churn.model import Calibrator, ChurnModel
from churn.plots import plot_importance, plot_lift, plot_reliability
from churn.scoring import (
    LOST_BAND,
    LOST_STAGE,
    RISK_BANDS,
    ChurnScores,
    add_loyalty,
    lifecycle_by_band,
    profit_band,
    risk_band,
    score_churn,
    score_customers,
    train_churn,
    train_churn_learners,
    train_loyalty,
)
from crm_engine.lazy import lazy_names

if TYPE_CHECKING:
    from churn.pyfunc import (
        ChurnPyfunc,
        LoyaltyPyfunc,
        load_churn_model,
        load_loyalty_model,
        log_churn_model,
        log_loyalty_model,
    )

__getattr__ = lazy_names(
    "churn",
    "churn.pyfunc",
    (
        "ChurnPyfunc",
        "LoyaltyPyfunc",
        "load_churn_model",
        "load_loyalty_model",
        "log_churn_model",
        "log_loyalty_model",
    ),
)


__all__ = [
    "LOST_BAND",
    "LOST_STAGE",
    "RISK_BANDS",
    "Calibrator",
    "ChurnLearner",
    "ChurnModel",
    "ChurnPyfunc",
    "ChurnScores",
    "FeatureSpec",
    "LightGBMLearner",
    "LogisticLearner",
    "LoyaltyModel",
    "LoyaltyPyfunc",
    "NotFittedError",
    "Quartiles",
    "add_loyalty",
    "binary_metrics",
    "driver_reasons",
    "global_importance",
    "lifecycle_by_band",
    "lift_at",
    "lift_curve",
    "load_churn_model",
    "load_loyalty_model",
    "log_churn_model",
    "log_loyalty_model",
    "multiclass_metrics",
    "plot_importance",
    "plot_lift",
    "plot_reliability",
    "population_quartiles",
    "profit_band",
    "reason_text",
    "reliability_curve",
    "risk_band",
    "score_churn",
    "score_customers",
    "select_for_drivers",
    "top_drivers",
    "train_churn",
    "train_churn_learners",
    "train_loyalty",
]
