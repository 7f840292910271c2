"""Out-of-time evaluation: discrimination, calibration and targeting metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)


def _as_arrays(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(np.int8, copy=False).ravel()
    p = np.asarray(y_prob, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.shape[0]} rows but y_prob has {p.shape[0]}")
    if y.size == 0:
        raise ValueError("cannot evaluate on 0 rows")
    return y, p


def top_fraction_mask(y_prob: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Boolean mask of the ``ceil(fraction * n)`` highest scores (stable on ties)."""
    p = np.asarray(y_prob, dtype=np.float64).ravel()
    k = max(1, int(np.ceil(fraction * p.size)))
    order = np.argsort(-p, kind="stable")
    mask = np.zeros(p.size, dtype=bool)
    mask[order[:k]] = True
    return mask


def lift_at(y_true: np.ndarray, y_prob: np.ndarray, fraction: float = 0.1) -> tuple[float, float]:
    """Lift and capture rate of the top ``fraction`` of customers by score.

    Returns
    -------
    (lift, capture_rate)
        ``lift`` = churn rate in the top fraction / overall churn rate; ``capture_rate`` = share
        of all churners found in the top fraction. NaN when there is no churner.
    """
    y, p = _as_arrays(y_true, y_prob)
    mask = top_fraction_mask(p, fraction)
    total = y.sum()
    if total == 0:
        return float("nan"), float("nan")
    rate_top = y[mask].mean()
    return float(rate_top / y.mean()), float(y[mask].sum() / total)


def binary_metrics(y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier score, log-loss, top-decile lift and capture rate.

    Parameters
    ----------
    y_true
        0/1 (or bool) outcomes.
    y_prob
        Predicted probabilities of the positive class.
    """
    y, p = _as_arrays(y_true, y_prob)
    both = 0 < y.sum() < y.size
    lift, capture = lift_at(y, p, 0.1)
    return {
        "n": float(y.size),
        "base_rate": float(y.mean()),
        "mean_prediction": float(p.mean()),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "lift_top_decile": lift,
        "capture_top_decile": capture,
    }


def reliability_curve(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10) -> pl.DataFrame:
    """Observed rate against mean prediction in quantile bins of the prediction.

    Returns
    -------
    polars.DataFrame
        ``bin`` (Int64), ``mean_predicted``, ``observed_rate`` (Float64), ``count`` (Int64).
    """
    y, p = _as_arrays(y_true, y_prob)
    order = np.argsort(p, kind="stable")
    bins = np.empty(p.size, dtype=np.int64)
    bins[order] = np.arange(p.size) * n_bins // p.size
    return (
        pl.DataFrame({"bin": bins, "p": p, "y": y.astype(np.float64)})
        .group_by("bin")
        .agg(
            pl.col("p").mean().alias("mean_predicted"),
            pl.col("y").mean().alias("observed_rate"),
            pl.len().cast(pl.Int64).alias("count"),
        )
        .sort("bin")
    )


def lift_curve(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10) -> pl.DataFrame:
    """Cumulative lift and capture rate by score decile (decile 1 = highest scores).

    Returns
    -------
    polars.DataFrame
        ``decile`` (Int64), ``fraction`` (share of customers targeted), ``lift``, ``capture``.
    """
    y, p = _as_arrays(y_true, y_prob)
    order = np.argsort(-p, kind="stable")
    ys = y[order].astype(np.float64)
    cum = np.cumsum(ys)
    total = max(cum[-1], 1e-12)
    base = max(ys.mean(), 1e-12)
    rows = []
    for d in range(1, n_bins + 1):
        k = max(1, int(np.ceil(d / n_bins * y.size)))
        rows.append((d, k / y.size, float(cum[k - 1] / k / base), float(cum[k - 1] / total)))
    return pl.DataFrame(
        rows,
        schema={
            "decile": pl.Int64,
            "fraction": pl.Float64,
            "lift": pl.Float64,
            "capture": pl.Float64,
        },
        orient="row",
    )


def multiclass_metrics(
    y_true: Sequence[str] | np.ndarray, proba: np.ndarray, classes: Sequence[str]
) -> dict[str, float]:
    """Multi-class log-loss, accuracy and one-vs-rest ROC-AUC per class.

    Parameters
    ----------
    y_true
        Class labels (strings from ``classes``).
    proba
        ``(n, len(classes))`` predicted probabilities, columns in ``classes`` order.
    classes
        Class names.

    Returns
    -------
    dict
        ``log_loss``, ``accuracy``, ``auc_<class>`` (NaN when a class is absent or alone).
    """
    labels = np.asarray(y_true, dtype=object)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape != (labels.size, len(classes)):
        raise ValueError(f"proba has shape {proba.shape}, expected ({labels.size}, {len(classes)})")
    index = {c: i for i, c in enumerate(classes)}
    unknown = {v for v in set(labels.tolist()) if v not in index}
    if unknown:
        raise ValueError(f"labels {sorted(map(str, unknown))} not in classes {list(classes)}")
    y = np.array([index[v] for v in labels], dtype=np.int64)
    out = {
        "n": float(y.size),
        "log_loss": float(log_loss(y, np.clip(proba, 1e-15, 1), labels=list(range(len(classes))))),
        "accuracy": float((proba.argmax(axis=1) == y).mean()),
    }
    for i, c in enumerate(classes):
        yi = (y == i).astype(np.int8)
        both = 0 < yi.sum() < yi.size
        out[f"auc_{c}"] = float(roc_auc_score(yi, proba[:, i])) if both else float("nan")
        out[f"rate_{c}"] = float(yi.mean())
    return out
