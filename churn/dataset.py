"""Feature matrix for the churn and loyalty models: numeric columns plus stored categories."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from features import OTHER, column_role, model_features, profile_schema


def is_excluded(name: str) -> bool:
    """Whether a column may never be a feature (key, label or post-cut information)."""
    return column_role(name, pl.String()) in ("id", "label")


def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype == pl.Boolean


@dataclass(frozen=True)
class FeatureSpec:
    """Which columns feed a model and, for categorical ones, the categories seen in training.

    Build it with :meth:`from_frame` on the training frame; :meth:`to_matrix` (LightGBM's) and
    :meth:`to_pandas` (the logistic regression's) then turn any profile frame (training,
    validation or scoring) into the same matrix, with categorical codes fixed by the stored
    categories (unseen values become missing).

    Parameters
    ----------
    numeric
        Numeric feature names, in matrix order (booleans are numeric 0/1).
    categorical
        Categorical feature name -> training categories (sorted), after the numeric ones.
    """

    numeric: tuple[str, ...]
    categorical: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        """Column order of the matrix."""
        return [*self.numeric, *self.categorical]

    @classmethod
    def from_frame(
        cls,
        frame: pl.DataFrame,
        extra_features: Sequence[str] = (),
        features: Sequence[str] | None = None,
    ) -> FeatureSpec:
        """Choose the features of ``frame`` and record their categories.

        Parameters
        ----------
        frame
            The training frame (profile at the training cut, possibly with label columns).
        extra_features
            Additional columns (e.g. attributes of the customers table): numeric dtypes become
            numeric features, anything else categorical.
        features
            The profile's feature columns, derived from its declared schema
            (``features.model_features(features.profile_schema(cfg, tables))``): every one
            must be in ``frame``. None: the features of the default profile schema that
            ``frame`` has (for frames built by hand).

        Raises
        ------
        ValueError
            When a declared or extra feature is missing from the frame, or an extra feature is
            a key/label column.
        """
        schema = frame.schema
        if features is None:
            numeric_default, categorical_default = model_features(profile_schema())
            features = [c for c in (*numeric_default, *categorical_default) if c in schema]
        absent = [c for c in features if c not in schema]
        if absent:
            raise ValueError(
                f"{len(absent)} declared profile feature(s) missing from the training frame "
                f"({len(schema)} columns): {absent[:10]}"
            )
        missing = [c for c in extra_features if c not in schema]
        if missing:
            raise ValueError(
                f"extra_features {missing} are not columns of the training frame "
                f"({len(schema)} columns); the profile must carry them"
            )
        bad = [c for c in extra_features if is_excluded(c)]
        if bad:
            raise ValueError(f"extra_features {bad} are keys or labels and cannot be features")

        numeric, categorical = model_features({c: schema[c] for c in schema if c in features})
        for name in extra_features:
            if name in numeric or name in categorical:
                continue
            (numeric if _is_numeric(schema[name]) else categorical).append(name)
        if not numeric and not categorical:
            raise ValueError(
                f"no feature columns found in the frame (columns: {list(schema)[:10]}...)"
            )
        cats = (
            {
                c: tuple(frame.get_column(c).cast(pl.String).drop_nulls().unique().sort().to_list())
                for c in categorical
            }
            if categorical
            else {}
        )
        return cls(numeric=tuple(numeric), categorical=cats)

    def check_columns(self, frame: pl.DataFrame) -> None:
        """Raise ``ValueError`` naming the feature columns ``frame`` lacks."""
        missing = [c for c in self.feature_names if c not in frame.schema]
        if missing:
            raise ValueError(
                f"{len(missing)} feature column(s) missing from the frame to score: {missing[:10]}"
            )

    def _codes(self, frame: pl.DataFrame, column: str) -> pl.Series:
        """A categorical column's codes against the stored training categories (Int32): null
        for a missing value, and for an unseen one unless training pooled rare values in
        ``other`` (then ``other``'s code)."""
        categories = self.categorical[column]
        return (
            frame.get_column(column)
            .cast(pl.String)
            .replace_strict(
                list(categories),
                list(range(len(categories))),
                default=categories.index(OTHER) if OTHER in categories else None,
                return_dtype=pl.Int32,
            )
        )

    def to_matrix(self, frame: pl.DataFrame) -> np.ndarray:
        """The LightGBM matrix: float64, C order (as LightGBM reads it, so it makes no copy),
        :attr:`feature_names` columns: the numeric ones, then the categorical codes (see
        :meth:`to_pandas`); missing values NaN.

        Filled a column at a time: beside the matrix it takes one column. The pandas frame
        LightGBM was given before took, with LightGBM's own conversion, two copies more: 0.3
        GB each on the 1M operator's 499,001 training rows. The same values: the same trees and
        the same predictions bit for bit.
        """
        self.check_columns(frame)
        out = np.empty((frame.height, len(self.feature_names)), dtype=np.float64)
        for i, c in enumerate(self.numeric):
            out[:, i] = frame.get_column(c).cast(pl.Float64).to_numpy()
        for i, c in enumerate(self.categorical, start=len(self.numeric)):
            out[:, i] = self._codes(frame, c).cast(pl.Float64).to_numpy()
        return out

    def to_pandas(self, frame: pl.DataFrame) -> pd.DataFrame:
        """The logistic regression's matrix: float64 numeric columns and ``category`` columns.

        Categorical codes are computed against the stored training categories, so the same
        value always gets the same code; nulls become missing, and values unseen in training
        become ``other`` when the training pooled rare values there (missing otherwise).
        """
        self.check_columns(frame)
        data: dict[str, Any] = {}
        if self.numeric:
            num = frame.select(pl.col(c).cast(pl.Float64) for c in self.numeric).to_numpy()
            for i, c in enumerate(self.numeric):
                data[c] = num[:, i]
        for c, categories in self.categorical.items():
            codes = self._codes(frame, c).fill_null(-1).to_numpy()
            data[c] = pd.Categorical.from_codes(
                codes.astype(np.int32, copy=False),
                categories=pd.Index(list(categories), dtype=object),
            )
        return pd.DataFrame(data, columns=self.feature_names, copy=False)

    def to_json(self) -> str:
        """Serialise (used by the MLflow pyfunc artifacts)."""
        return json.dumps(
            {
                "numeric": list(self.numeric),
                "categorical": {k: list(v) for k, v in self.categorical.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        return cls(
            numeric=tuple(d["numeric"]),
            categorical={k: tuple(v) for k, v in d["categorical"].items()},
        )

    def synthetic_input(self, n_rows: int = 3) -> pd.DataFrame:
        """A small made-up frame with the scoring columns (for MLflow signatures).

        Numeric columns are float64 (integers that may be null are declared float),
        categorical ones plain strings taken from the stored categories. No customer data.
        """
        data: dict[str, Any] = {c: np.arange(n_rows, dtype=np.float64) for c in self.numeric}
        for c, categories in self.categorical.items():
            values = list(categories) or ["unknown"]
            data[c] = pd.Series([values[i % len(values)] for i in range(n_rows)], dtype=object)
        return pd.DataFrame(data, columns=self.feature_names)
