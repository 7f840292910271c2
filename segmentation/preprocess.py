"""Feature preprocessing for clustering: impute, log1p heavy tails, scale, one-hot categoricals."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from crm_engine.config import FeaturesConfig
from features import DESCRIPTIVE_COLUMNS


def _window(windows: Sequence[int], preferred: int) -> int:
    """``preferred`` when it is one of the configured windows, else the longest one."""
    return preferred if preferred in windows else max(windows)


def default_features(cfg: FeaturesConfig | None = None) -> tuple[str, ...]:
    """Default behavioural features, by theme, named as the profile built with ``cfg`` names them.

    The profile's windowed columns (``revenue_<w>d``, ``<kpi>_mean_<n>m``,
    ``complaints_<w>d``) follow ``[features]``, so the defaults are derived from the same
    config: a profile with ``network_months = 6`` clusters on its 6-month network means.
    A default is absent from a profile only when its optional input table was not supplied.
    """
    cfg = cfg or FeaturesConfig()
    n = cfg.network_months
    return (
        # spend
        f"revenue_{_window(cfg.spend_windows_days, 365)}d",
        "avg_monthly_spend",
        "frequency",
        "monetary_value",
        # usage
        "data_mb_12m",
        "voice_min_12m",
        "sms_12m",
        # network
        f"dropped_call_rate_mean_{n}m",
        f"avg_download_mbps_mean_{n}m",
        f"latency_ms_mean_{n}m",
        # service
        f"complaints_{_window(cfg.service_windows_days, 365)}d",
        # who
        "tenure_days",
        "age",
        # categorical
        *DEFAULT_CATEGORICAL_FEATURES,
    )


DEFAULT_CATEGORICAL_FEATURES: tuple[str, ...] = ("occupation", "area_type", "plan_type")
DEFAULT_FEATURES: tuple[str, ...] = default_features()
"""The defaults for the default ``[features]`` windows."""

#: Default weight of a feature in the clustering distance (after scaling; 1.0 if none matches),
#: by name pattern so that every window of a feature weighs the same.
#: Spend is measured by four correlated columns: 0.5 each, so the theme counts about as much
#: as one distinct behaviour (data, voice and SMS use; age; occupation). Network experience
#: mostly says where a customer lives, tenure is a lifecycle fact with its own column and
#: complaint counts are sparse: they are context rather than behaviour and weigh 0.3 (they
#: still shape the names and profiles). On the synthetic operator this lifts persona recovery
#: (adjusted Rand index) from ~0.45 to ~0.96 and makes the silhouette peak at the true k.
DEFAULT_WEIGHTS: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(r"^(revenue_\d+d|avg_monthly_spend|frequency|monetary_value)$"), 0.5),
    (re.compile(r"^(dropped_call_rate|avg_download_mbps|latency_ms)_mean_\d+m$"), 0.3),
    (re.compile(r"^(complaints_\d+d|tenure_days)$"), 0.3),
)


def default_weight(feature: str) -> float:
    """The default distance weight of a feature (:data:`DEFAULT_WEIGHTS`)."""
    return next((w for pattern, w in DEFAULT_WEIGHTS if pattern.match(feature)), 1.0)


#: Columns that are one-hot encoded when they are among the features.
CATEGORICAL_COLUMNS: frozenset[str] = frozenset({*DESCRIPTIVE_COLUMNS, "spend_level"})

_HEAVY_TAILED = re.compile(
    r"^(revenue_\d+d|avg_monthly_spend|frequency|monetary_value|refund_(count|amount)"
    r"|(data_mb|voice_min|sms)_\d+m|(complaints|inquiries)_\d+d.*|open_tickets"
    r"|resolution_hours_(mean|max)|n_contacts|call_minutes_12m)$"
)

MISSING_CATEGORY = "unknown"


def is_heavy_tailed(column: str) -> bool:
    """Whether a feature is a non-negative amount or count that gets ``log1p`` before scaling."""
    return _HEAVY_TAILED.match(column) is not None


def log1p_nonneg(x: np.ndarray) -> np.ndarray:
    """``log1p(max(x, 0))``: refunds can make spend slightly negative."""
    return np.log1p(np.clip(np.asarray(x, dtype=np.float64), 0.0, None))


def split_features(features: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """Split feature names into (heavy-tailed numeric, other numeric, categorical)."""
    heavy, plain, cat = [], [], []
    for f in features:
        if f in CATEGORICAL_COLUMNS:
            cat.append(f)
        elif is_heavy_tailed(f):
            heavy.append(f)
        else:
            plain.append(f)
    return heavy, plain, cat


def build_preprocessor(features: Sequence[str]) -> ColumnTransformer:
    """A ColumnTransformer for the given profile features.

    Numeric features: median imputation, ``log1p`` for heavy-tailed amounts and counts,
    standard scaling. Categorical features: missing -> ``"unknown"``, one-hot (unknown
    categories at predict time encode as all zeros).

    Parameters
    ----------
    features
        Profile column names; categorical ones are recognised by name
        (:data:`CATEGORICAL_COLUMNS`).
    """
    heavy, plain, cat = split_features(features)
    transformers: list[tuple[str, Pipeline, list[str]]] = []
    if heavy:
        transformers.append(
            (
                "heavy",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median")),
                        (
                            "log1p",
                            FunctionTransformer(log1p_nonneg, feature_names_out="one-to-one"),
                        ),
                        ("scale", StandardScaler()),
                    ]
                ),
                heavy,
            )
        )
    if plain:
        transformers.append(
            (
                "num",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                plain,
            )
        )
    if cat:
        transformers.append(
            (
                "cat",
                Pipeline(
                    [
                        (
                            "impute",
                            SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY),
                        ),
                        (
                            "onehot",
                            OneHotEncoder(
                                handle_unknown="ignore",
                                sparse_output=False,
                                min_frequency=0.005,
                                dtype=np.float64,
                            ),
                        ),
                    ]
                ),
                cat,
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def to_model_frame(X: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """Select ``features`` with the dtypes the preprocessor expects.

    Numeric columns become float64 (nullable integers with NA become NaN); categorical
    columns become object with ``None`` for missing, so the imputer sees one missing marker.
    """
    out = {}
    for f in features:
        col = X[f]
        if f in CATEGORICAL_COLUMNS:
            values = col.astype(object)
            out[f] = values.where(col.notna(), None)
        else:
            out[f] = pd.to_numeric(col, errors="coerce").astype(np.float64)
    return pd.DataFrame(out, index=X.index)


def multiply_columns(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``X * weights`` column-wise (the feature-weight step of the segmenter pipeline)."""
    return np.asarray(X, dtype=np.float64) * weights


def output_weights(
    feature_names_out: Sequence[str],
    features: Sequence[str],
    weights: dict[str, float] | None = None,
) -> np.ndarray:
    """Weight of each transformed column: its source feature's weight.

    Parameters
    ----------
    feature_names_out
        Transformed column names (one-hot columns are ``<column>_<value>``).
    features
        Source features.
    weights
        Overrides of :func:`default_weight` (feature name -> weight >= 0).
    """
    merged = weights or {}
    bad = {k: v for k, v in merged.items() if not (np.isfinite(v) and v >= 0)}
    if bad:
        raise ValueError(f"feature weights must be finite and >= 0, got {bad}")
    _, _, cat = split_features(features)
    by_length = sorted(cat, key=len, reverse=True)
    out = []
    for name in feature_names_out:
        source = next((c for c in by_length if name.startswith(f"{c}_")), name)
        out.append(float(merged.get(source, default_weight(source))))
    return np.asarray(out, dtype=np.float64)


def source_feature(name: str, categorical: Sequence[str]) -> tuple[str, str | None]:
    """``(column, category)`` of a transformed column name (category None for numeric)."""
    for c in sorted(categorical, key=len, reverse=True):
        if name.startswith(f"{c}_"):
            return c, name[len(c) + 1 :]
    return name, None
