"""Evaluation plots written as PNG files (matplotlib object API, no pyplot global state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from churn.metrics import lift_curve, reliability_curve
from crm_engine.feature_labels import plain_label


def plot_reliability(y_true: np.ndarray, y_prob: np.ndarray, path: Path, n_bins: int = 10) -> Path:
    """Reliability curve: observed churn rate against mean predicted probability per bin."""
    curve = reliability_curve(y_true, y_prob, n_bins)
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    top = max(float(curve["mean_predicted"].max() or 0), float(curve["observed_rate"].max() or 0))
    top = min(1.0, top * 1.05 + 1e-3)
    ax.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect calibration")
    ax.plot(curve["mean_predicted"], curve["observed_rate"], marker="o", label="model")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed churn rate")
    ax.set_title(f"Reliability ({n_bins} quantile bins, n={len(np.ravel(y_true))})")
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_lift(y_true: np.ndarray, y_prob: np.ndarray, path: Path, n_bins: int = 10) -> Path:
    """Cumulative lift and capture rate by share of customers targeted."""
    curve = lift_curve(y_true, y_prob, n_bins)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.bar(curve["fraction"] * 100, curve["lift"], width=100 / n_bins * 0.8, label="lift")
    ax.axhline(1.0, color="grey", linestyle="--")
    ax.set_xlabel("customers targeted, highest risk first (%)")
    ax.set_ylabel("cumulative lift")
    ax2 = ax.twinx()
    ax2.plot(
        curve["fraction"] * 100, curve["capture"], color="C1", marker="o", label="capture rate"
    )
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("share of churners captured")
    ax.set_title("Lift and capture rate")
    return _save(fig, path)


def plot_importance(importance: pl.DataFrame, path: Path, top: int = 20) -> Path:
    """Horizontal bars of ``mean_abs_contribution`` per ``feature`` (largest on top)."""
    df = importance.sort("mean_abs_contribution", descending=True).head(top).reverse()
    fig = Figure(figsize=(6, max(2.5, 0.3 * df.height + 1)))
    ax = fig.subplots()
    ax.barh([plain_label(f) for f in df["feature"]], df["mean_abs_contribution"].to_list())
    ax.set_xlabel("mean |contribution| to log-odds")
    ax.set_ylabel("feature")
    fig.suptitle("Global importance (explained customers)")  # centred on the figure, not the axes
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    return path


def plot_learning_curve(curve: list[dict[str, float]], path: Path) -> Path:
    """Out-of-time ROC-AUC and Brier score against the number of stacked training snapshots."""
    k = [int(r["snapshots"]) for r in curve]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(k, [r["roc_auc"] for r in curve], marker="o", label="ROC-AUC")
    ax.set_xlabel("training snapshots stacked (latest first)")
    ax.set_ylabel("out-of-time ROC-AUC")
    ax.set_xticks(k)
    ax2 = ax.twinx()
    ax2.plot(k, [r["brier"] for r in curve], color="C1", marker="s", label="Brier score")
    ax2.set_ylabel("Brier score (lower is better)")
    ax.legend(loc="upper left")
    ax2.legend(loc="upper right")
    ax.set_title("Learning curve over training snapshots")
    return _save(fig, path)


def plot_profit_curve(checked: pl.DataFrame, planned: pl.DataFrame, path: Path) -> Path:
    """Profit of a retention campaign by share of customers contacted, riskiest first.

    ``checked``: ``share, profit_per_customer`` out of time on known outcomes
    (:func:`churn.profit.profit_curve`); ``planned``: ``share, expected_profit`` (total,
    currency) of this run's customers ranked by their expected profit. The best point of each
    is marked.
    """
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    for ax, frame, column, title, ylabel, order in (
        (
            left,
            checked,
            "profit_per_customer",
            "Checked out of time (known outcomes)",
            "profit per customer",
            "riskiest first",
        ),
        (
            right,
            planned,
            "expected_profit",
            "This run: expected profit",
            "total expected profit",
            "most profitable first",
        ),
    ):
        if frame.height == 0:
            ax.set_axis_off()
            continue
        x = frame["share"].to_numpy() * 100
        y = frame[column].to_numpy()
        best = int(np.argmax(y))
        ax.plot(x, y, color="C2")
        ax.axhline(0.0, color="grey", linestyle="--")
        ax.axvline(x[best], color="C3", linestyle=":")
        ax.plot(
            [x[best]], [y[best]], marker="o", color="C3", label=f"best: {x[best]:.1f}% contacted"
        )
        ax.set_xlabel(f"customers contacted, {order} (%)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(loc="lower left")
    return _save(fig, path)


def plot_network_value(points: pl.DataFrame, path: Path) -> Path:
    """Each customer's own value at risk against the value at risk through their contacts, of
    the customers ``points`` (``value_at_risk``, ``value_at_risk_network``: a bounded few,
    :func:`churn.network.network_points`), on log axes. Above the diagonal, a customer's
    leaving costs more through the people they call than in their own CLV.
    """
    valued = points.filter((pl.col("value_at_risk") > 0) & (pl.col("value_at_risk_network") > 0))
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    if valued.height:
        x = valued["value_at_risk"].to_numpy()
        y = valued["value_at_risk_network"].to_numpy()
        above = y > x
        ax.scatter(x[~above], y[~above], s=6, alpha=0.4, color="C0", label="own value larger")
        ax.scatter(x[above], y[above], s=8, alpha=0.7, color="C3", label="network value larger")
        lo = float(max(min(x.min(), y.min()), 1e-3))
        hi = float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(loc="upper left")
    ax.set_xlabel("own value at risk (churn probability x CLV)")
    ax.set_ylabel("value at risk through contacts")
    ax.set_title("What a departure costs: own vs through the call graph")
    return _save(fig, path)
