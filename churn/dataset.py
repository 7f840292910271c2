"""Feature matrix for the churn and loyalty models: numeric columns plus stored categories."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

NETWORK_KPIS: tuple[str, ...] = (
    "dropped_call_rate",
    "call_setup_success_rate",
    "avg_download_mbps",
    "latency_ms",
    "packet_loss_pct",
    "coverage_5g_share",
)
COMPLAINT_TOPICS: tuple[str, ...] = ("network", "billing", "service", "device", "other")

CATEGORICAL_FEATURES: tuple[str, ...] = (
    "age_band",
    "gender",
    "occupation",
    "region",
    "area_type",
    "plan_type",
)

NUMERIC_FEATURES: tuple[str, ...] = (
    "age",
    "tenure_days",
    "revenue_30d",
    "revenue_90d",
    "revenue_365d",
    "avg_monthly_spend",
    "spend_trend",
    "share_topup",
    "share_bill",
    "share_addon",
    "share_device",
    "share_other",
    "refund_count",
    "refund_amount",
    "days_since_last_payment",
    "has_purchase",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "data_mb_3m",
    "voice_min_3m",
    "sms_3m",
    "data_mb_12m",
    "voice_min_12m",
    "sms_12m",
    "data_trend",
    "voice_trend",
    "zero_usage_share_12m",
    *(f"{k}_{s}_3m" for k in NETWORK_KPIS for s in ("mean", "worst")),
    "complaints_90d",
    "complaints_365d",
    "inquiries_90d",
    "inquiries_365d",
    *(f"complaints_365d_{t}" for t in COMPLAINT_TOPICS),
    "open_tickets",
    "resolution_hours_mean",
    "resolution_hours_max",
    "days_since_last_complaint",
    "interaction_satisfaction_mean",
    "last_nps",
    "last_csat",
    "days_since_survey",
    "n_contacts",
    "call_minutes_12m",
    "outside_region_share",
    "influence_score",
    "churned_contacts_share_90d",
)

# Windowed profile columns whose window lengths come from FeaturesConfig: matched by name so a
# config with other windows (revenue_60d, complaints_180d_billing, ...) still feeds the model.
_WINDOWED = re.compile(
    r"^(revenue_\d+d|complaints_\d+d|inquiries_\d+d|complaints_\d+d_[a-z0-9_]+)$"
)

# Never features: keys, labels and anything describing the future of the cut.
_LABEL = re.compile(r"^churned_within_\d+d$")
EXCLUDED_COLUMNS: frozenset[str] = frozenset(
    {"customer_id", "as_of", "loyalty_class", "next_nps", "churn_date", "signup_date", "birth_date"}
)


def is_excluded(name: str) -> bool:
    """Whether a column may never be a feature (key, label or post-cut information)."""
    return name in EXCLUDED_COLUMNS or bool(_LABEL.match(name))


def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype == pl.Boolean


@dataclass(frozen=True)
class FeatureSpec:
    """Which columns feed a model and, for categorical ones, the categories seen in training.

    Build it with :meth:`from_frame` on the training frame; :meth:`to_pandas` then turns any
    profile frame (training, validation or scoring) into the same LightGBM matrix, with
    categorical codes fixed by the stored categories (unseen values become missing).

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
        cls, frame: pl.DataFrame, extra_features: list[str] | tuple[str, ...] = ()
    ) -> FeatureSpec:
        """Choose the features present in ``frame`` and record their categories.

        Parameters
        ----------
        frame
            The training frame (profile at the training cut, possibly with label columns).
        extra_features
            Additional columns (e.g. attributes of the customers table): numeric dtypes become
            numeric features, anything else categorical.

        Raises
        ------
        ValueError
            When an extra feature is missing from the frame or is a key/label column.
        """
        schema = frame.schema
        missing = [c for c in extra_features if c not in schema]
        if missing:
            raise ValueError(
                f"extra_features {missing} are not columns of the training frame "
                f"({len(schema)} columns); the profile must carry them"
            )
        bad = [c for c in extra_features if is_excluded(c)]
        if bad:
            raise ValueError(f"extra_features {bad} are keys or labels and cannot be features")

        numeric: list[str] = []
        categorical: list[str] = []
        for name in schema:
            if is_excluded(name):
                continue
            if name in CATEGORICAL_FEATURES:
                categorical.append(name)
            elif (name in NUMERIC_FEATURES or _WINDOWED.match(name)) and _is_numeric(schema[name]):
                numeric.append(name)
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

    def to_pandas(self, frame: pl.DataFrame) -> pd.DataFrame:
        """The LightGBM matrix: float64 numeric columns and ``category`` columns.

        Categorical codes are computed against the stored training categories, so the same
        value always gets the same code; nulls and values unseen in training become missing.
        """
        self.check_columns(frame)
        data: dict[str, Any] = {}
        if self.numeric:
            num = frame.select(pl.col(c).cast(pl.Float64) for c in self.numeric).to_numpy()
            for i, c in enumerate(self.numeric):
                data[c] = num[:, i]
        for c, categories in self.categorical.items():
            codes = (
                frame.get_column(c)
                .cast(pl.String)
                .replace_strict(
                    list(categories),
                    list(range(len(categories))),
                    default=-1,
                    return_dtype=pl.Int32,
                )
                .fill_null(-1)
                .to_numpy()
            )
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
