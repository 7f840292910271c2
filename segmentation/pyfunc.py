"""The segmentation model as an MLflow pyfunc: profile rows in, segment_id/segment_name out.

This module imports MLflow; import it only where a model is logged or loaded.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import polars as pl
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from segmentation.cluster import Segmenter
from segmentation.preprocess import CATEGORICAL_COLUMNS, MISSING_CATEGORY, to_model_frame

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

    from segmentation.stage import SegmentationResult

ARTIFACT_KEY = "segmenter"
DEFAULT_NAME = "segmentation"


class SegmenterPyfunc(mlflow.pyfunc.PythonModel):
    """Scores a profile frame with a pickled :class:`Segmenter` (ids and names included)."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Unpickle the fitted segmenter stored as the ``segmenter`` artifact."""
        with open(context.artifacts[ARTIFACT_KEY], "rb") as fh:
            self.segmenter: Segmenter = pickle.load(fh)

    # model_input is left unannotated: MLflow reads predict's type hints as a schema.
    def predict(  # type: ignore[no-untyped-def]
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """``segment_id`` (int64) and ``segment_name`` of each input row."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.segmenter.assign(frame).reset_index(drop=True)


def model_input_frame(segmenter: Segmenter, profile: pl.DataFrame | pd.DataFrame) -> pd.DataFrame:
    """The model's columns of a profile, typed as its signature wants (numbers as float64).

    Integer profile columns (``frequency``, ``tenure_days``, nullable ``age``) are declared
    double in the signature so that a batch with nulls still fits; MLflow will not widen
    int64 to double by itself.
    """
    frame = profile.to_pandas() if isinstance(profile, pl.DataFrame) else profile
    return to_model_frame(frame, segmenter.features_)


def _categories(segmenter: Segmenter) -> dict[str, list[str]]:
    pre = segmenter.pipeline_.named_steps["preprocess"]
    if "cat" not in pre.named_transformers_:
        return {}
    cat_cols = [c for name, _, cols in pre.transformers_ if name == "cat" for c in cols]
    encoder = pre.named_transformers_["cat"].named_steps["onehot"]
    return {
        col: [str(v) for v in cats] for col, cats in zip(cat_cols, encoder.categories_, strict=True)
    }


def _medians(segmenter: Segmenter) -> dict[str, float]:
    pre = segmenter.pipeline_.named_steps["preprocess"]
    out: dict[str, float] = {}
    for name, _, cols in pre.transformers_:
        if name in ("heavy", "num"):
            stats = pre.named_transformers_[name].named_steps["impute"].statistics_
            out.update({c: float(s) for c, s in zip(cols, stats, strict=True)})
    return out


def synthetic_input_example(segmenter: Segmenter, n_rows: int = 3) -> pd.DataFrame:
    """A made-up input frame with the model's columns (never customer rows).

    Numeric columns take the fitted imputation medians scaled by 0.5, 1, 2...; categorical
    columns cycle through the fitted categories.
    """
    medians = _medians(segmenter)
    cats = _categories(segmenter)
    data: dict[str, Any] = {}
    for f in segmenter.features_:
        if f in CATEGORICAL_COLUMNS:
            values = cats.get(f) or [MISSING_CATEGORY]
            values = [v for v in values if v != "infrequent_sklearn"] or [MISSING_CATEGORY]
            data[f] = pd.Series([values[i % len(values)] for i in range(n_rows)], dtype=object)
        else:
            base = medians.get(f, 0.0)
            data[f] = np.array([base * (0.5 * 2**i) for i in range(n_rows)], dtype=np.float64)
    return pd.DataFrame(data)


def segmentation_signature(segmenter: Segmenter) -> ModelSignature:
    """Input: every feature (numeric as double, so null-able integers fit); output: id + name."""
    inputs = Schema(
        [
            ColSpec("string" if f in CATEGORICAL_COLUMNS else "double", f, required=False)
            for f in segmenter.features_
        ]
    )
    outputs = Schema([ColSpec("long", "segment_id"), ColSpec("string", "segment_name")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_segmentation_model(
    result: SegmentationResult | Segmenter,
    name: str = DEFAULT_NAME,
    registered_model_name: str | None = None,
) -> ModelInfo:
    """Log the fitted segmenter as an MLflow pyfunc model inside the active run.

    Parameters
    ----------
    result
        The stage result (or a fitted segmenter).
    name
        Model name within the run (``log_model(name=...)``).
    registered_model_name
        Also register under this name when given.

    Returns
    -------
    mlflow.models.model.ModelInfo
        Load it back with ``mlflow.pyfunc.load_model(info.model_uri)``.
    """
    segmenter = result if isinstance(result, Segmenter) else result.model
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "segmenter.pkl"
        with open(path, "wb") as fh:
            pickle.dump(segmenter, fh, protocol=pickle.HIGHEST_PROTOCOL)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=SegmenterPyfunc(),
            artifacts={ARTIFACT_KEY: str(path)},
            signature=segmentation_signature(segmenter),
            input_example=synthetic_input_example(segmenter),
            registered_model_name=registered_model_name,
        )
