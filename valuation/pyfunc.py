"""MLflow pyfunc wrapper of a fitted purchase model + spend model (imports mlflow: load lazily)."""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
import polars as pl

from crm_engine.config import ValuationConfig
from valuation.base import PurchaseModel
from valuation.gamma_gamma import GammaGammaModel
from valuation.stage import ValuationModels, btyd_frame, score_arrays

INPUT_COLUMNS: tuple[str, ...] = ("frequency", "recency", "T", "monetary_value")
OUTPUT_COLUMNS: tuple[str, ...] = ("p_alive", "expected_purchases", "expected_avg_value", "clv")


class ValuationPyfunc(mlflow.pyfunc.PythonModel):
    """Scores a profile frame (``frequency``, ``recency``, ``T``, ``monetary_value``, days).

    Optional ``has_purchase`` marks customers without any purchase (scored with
    frequency=0, recency=0). Returns ``p_alive``, ``expected_purchases``,
    ``expected_avg_value`` and ``clv`` over the stored horizon.

    Parameters
    ----------
    purchase, spend
        Fitted models.
    cfg
        The valuation config whose horizon, discount rate and margin are stored.
    """

    def __init__(
        self, purchase: PurchaseModel, spend: GammaGammaModel, cfg: ValuationConfig
    ) -> None:
        self.purchase = purchase
        self.spend = spend
        self.config = cfg.model_dump(mode="json")

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Score ``model_input`` (a pandas frame); ``context`` and ``params`` are unused."""
        cfg = ValuationConfig.model_validate(self.config)
        frame = pl.from_pandas(pd.DataFrame(model_input).reset_index(drop=True))
        n = frame.height
        extra = {
            "customer_id": pl.int_range(n, eager=True),
            "tenure_days": pl.repeat(0, n, eager=True),
        }
        frame = frame.with_columns(
            **{k: v for k, v in extra.items() if k not in frame.columns},
            **({} if "revenue_365d" in frame.columns else {"revenue_365d": pl.lit(0.0)}),
        )
        X = btyd_frame(frame)
        scores = score_arrays(X, ValuationModels(self.purchase, self.spend), cfg)
        return pd.DataFrame({k: np.asarray(scores[k], dtype=np.float64) for k in OUTPUT_COLUMNS})


def synthetic_input_example() -> pd.DataFrame:
    """Two made-up customers (never real rows: customer data is personal data)."""
    return pd.DataFrame(
        {
            "frequency": [0.0, 12.0],
            "recency": [0.0, 300.0],
            "T": [45.0, 400.0],
            "monetary_value": [0.0, 25.5],
        }
    )


def log_valuation_model(
    purchase_model: PurchaseModel,
    spend_model: GammaGammaModel,
    cfg: ValuationConfig,
    name: str = "clv_model",
    registered_model_name: str | None = None,
) -> Any:
    """Log the CLV model to the active MLflow run as a pyfunc model.

    Parameters
    ----------
    purchase_model, spend_model
        Fitted models.
    cfg
        Valuation config (horizon, discount rate, margin are stored with the model).
    name
        Model name within the run.
    registered_model_name
        Also register it under this name when given.

    Returns
    -------
    mlflow.models.model.ModelInfo
    """
    from mlflow.models import infer_signature

    wrapper = ValuationPyfunc(purchase_model, spend_model, cfg)
    example = synthetic_input_example()
    signature = infer_signature(example, wrapper.predict(None, example))
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=wrapper,
        signature=signature,
        input_example=example,
        registered_model_name=registered_model_name,
        # Pinned here: inferring requirements reloads the model in a subprocess (~5 s).
        pip_requirements=_requirements(),
    )


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in (
        "lifetimes",
        "numpy",
        "pandas",
        "polars",
        "scipy",
        "scikit-learn",
        "mlflow",
        "pydantic",
        "autograd",
    ):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out
