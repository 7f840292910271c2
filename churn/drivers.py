"""Churn reasons: top signed TreeSHAP contributions per customer, and global importance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from crm_engine.contracts import DRIVER_STRUCT

DRIVERS_DTYPE = pl.List(DRIVER_STRUCT)


def select_for_drivers(
    probability: np.ndarray,
    min_probability: float,
    top_n: int,
    value_at_risk: np.ndarray | None = None,
) -> np.ndarray:
    """Which customers get reasons: probability at or above a threshold, or top by value.

    Parameters
    ----------
    probability
        Calibrated churn probabilities.
    min_probability
        Everyone at or above it is explained.
    top_n
        Also explain the ``top_n`` customers with the highest ``value_at_risk`` (or the
        highest probability when ``value_at_risk`` is None). Missing values rank last.
    value_at_risk
        ``probability x clv`` per customer, NaN where unknown.

    Returns
    -------
    numpy.ndarray
        Boolean mask.
    """
    p = np.asarray(probability, dtype=np.float64)
    mask = p >= min_probability
    if top_n > 0 and p.size:
        key = p if value_at_risk is None else np.asarray(value_at_risk, dtype=np.float64)
        if key.shape != p.shape:
            raise ValueError(f"value_at_risk has {key.size} rows, probability {p.size}")
        key = np.where(np.isnan(key), -np.inf, key)
        k = min(top_n, p.size)
        top = np.argpartition(-key, k - 1)[:k] if k < p.size else np.arange(p.size)
        mask[top] = True
    return mask


def top_drivers(
    contributions: np.ndarray, feature_names: Sequence[str], n_drivers: int
) -> pl.Series:
    """The ``n_drivers`` largest positive contributions per row, largest first.

    Parameters
    ----------
    contributions
        ``(m, k + 1)`` from ``booster.predict(..., pred_contrib=True)`` (last column = bias)
        or ``(m, k)``.
    feature_names
        The ``k`` feature names.
    n_drivers
        How many reasons at most; only features pushing risk up (contribution > 0) are kept.

    Returns
    -------
    polars.Series
        ``List(Struct{feature: String, contribution: Float64})`` of length ``m``.
    """
    names = np.asarray(list(feature_names), dtype=object)
    k = names.size
    c = np.asarray(contributions, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] not in (k, k + 1):
        raise ValueError(f"contributions of shape {c.shape} do not match {k} feature names")
    c = c[:, :k]
    m = c.shape[0]
    n = min(n_drivers, k)
    if m == 0 or n == 0:
        return pl.Series("churn_drivers", [[]] * m, dtype=DRIVERS_DTYPE)
    if n < k:
        part = np.argpartition(-c, n - 1, axis=1)[:, :n]
    else:
        part = np.tile(np.arange(k), (m, 1))
    vals = np.take_along_axis(c, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    keep = vals > 0
    rows = np.repeat(np.arange(m), n)[keep.ravel()]
    flat = pl.DataFrame(
        {
            "row": rows,
            "feature": pl.Series(names[idx.ravel()[keep.ravel()]], dtype=pl.String),
            "contribution": vals.ravel()[keep.ravel()],
        }
    )
    grouped = flat.group_by("row", maintain_order=True).agg(
        pl.struct("feature", "contribution").alias("churn_drivers")
    )
    return (
        pl.DataFrame({"row": np.arange(m)})
        .join(grouped, on="row", how="left", maintain_order="left")
        .get_column("churn_drivers")
        .fill_null(pl.lit([], dtype=DRIVERS_DTYPE))
        .cast(DRIVERS_DTYPE)
    )


def drivers_column(n_rows: int, explained: np.ndarray, reasons: pl.Series) -> pl.Series:
    """Full-length drivers column: ``reasons`` for the ``explained`` rows, empty lists elsewhere.

    Parameters
    ----------
    n_rows
        Length of the output.
    explained
        Boolean mask of length ``n_rows``.
    reasons
        One row per True in ``explained``, in order: :func:`top_drivers` of their
        contributions (computed in batches and concatenated when there are many).

    Returns
    -------
    polars.Series
        ``churn_drivers``, ``List(Struct{feature: String, contribution: Float64})`` of length
        ``n_rows``.
    """
    explained = np.asarray(explained, dtype=bool)
    if explained.size != n_rows or explained.sum() != len(reasons):
        raise ValueError(
            f"explained mask ({explained.sum()} of {explained.size}) does not match "
            f"{len(reasons)} rows of reasons / {n_rows} rows"
        )
    positions = np.flatnonzero(explained)
    return (
        pl.DataFrame({"row": np.arange(n_rows)})
        .join(
            pl.DataFrame({"row": positions, "churn_drivers": reasons.cast(DRIVERS_DTYPE)}),
            on="row",
            how="left",
            maintain_order="left",
        )
        .get_column("churn_drivers")
        .fill_null(pl.lit([], dtype=DRIVERS_DTYPE))
        .cast(DRIVERS_DTYPE)
    )


def global_importance(contributions: np.ndarray, feature_names: Sequence[str]) -> pl.DataFrame:
    """Mean absolute contribution per feature over the explained customers, largest first.

    Returns
    -------
    polars.DataFrame
        ``feature`` (String), ``mean_abs_contribution`` (Float64).
    """
    names = list(feature_names)
    c = np.asarray(contributions, dtype=np.float64)
    c = c[:, : len(names)]
    values = np.abs(c).mean(axis=0) if c.shape[0] else np.zeros(len(names))
    return pl.DataFrame(
        {"feature": names, "mean_abs_contribution": values},
        schema={"feature": pl.String, "mean_abs_contribution": pl.Float64},
    ).sort("mean_abs_contribution", descending=True, maintain_order=True)
