"""Fitting machinery of the value models: distinct rows with counts, warm starts, the minimiser."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import polars as pl

T = TypeVar("T")

_KEY_BITS = 21


def _packable(cols: Mapping[str, np.ndarray]) -> bool:
    """Whether every column holds non-negative integers below 2**21 (days, counts)."""
    if len(cols) > 3:
        return False
    for a in cols.values():
        if len(a) == 0:
            continue
        if a.min() < 0 or a.max() >= 2**_KEY_BITS or not np.array_equal(a, np.floor(a)):
            return False
    return True


def compress(
    cols: Mapping[str, np.ndarray], weights: np.ndarray | None = None, inverse: bool = True
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None]:
    """Distinct rows of ``cols`` (sorted), their summed weights and each input row's index.

    Integer-valued columns (whole days, counts) are packed into one int64 key, which is
    several times faster than grouping on float columns.

    Returns
    -------
    unique, counts, inverse
        ``unique[c][inverse] == cols[c]`` for every column ``c``; ``inverse`` is None when
        not requested.
    """
    names = list(cols)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if _packable(cols):
        key = np.zeros(len(cols[names[0]]), dtype=np.int64)
        for c in names:
            key = (key << _KEY_BITS) | cols[c].astype(np.int64)
        inv: np.ndarray | None = None
        if inverse:
            ukey, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
            counts = cnt.astype(np.float64) if w is None else np.bincount(inv, weights=w)
        elif w is None:
            # Runs of the sorted keys: several times faster than a group-by, then a sort.
            runs = pl.Series(key).sort().rle()
            ukey = runs.struct.field("value").to_numpy()
            counts = runs.struct.field("len").to_numpy()
        else:
            frame = pl.DataFrame({"k": key, "w": w})
            g = frame.group_by("k").agg(pl.col("w").sum()).sort("k")
            ukey, counts = g.get_column("k").to_numpy(), g.get_column("w").to_numpy()
        unique = {}
        mask = (1 << _KEY_BITS) - 1
        for i, c in enumerate(names):
            shift = _KEY_BITS * (len(names) - 1 - i)
            unique[c] = ((ukey >> shift) & mask).astype(np.float64)
        return unique, np.asarray(counts, dtype=np.float64), inv
    frame = pl.DataFrame({c: cols[c] for c in names})
    if w is None:
        groups = frame.group_by(names).agg(pl.len().cast(pl.Float64).alias("__w"))
    else:
        groups = frame.with_columns(__w=w).group_by(names).agg(pl.col("__w").sum())
    uniq = groups.sort(names).with_row_index("__k")
    inv = None
    if inverse:
        inv = (
            frame.select(names)
            .join(uniq.select([*names, "__k"]), on=names, how="left", maintain_order="left")
            .get_column("__k")
            .cast(pl.Int64)
            .to_numpy()
        )
    unique = {c: uniq.get_column(c).to_numpy() for c in names}
    return unique, uniq.get_column("__w").to_numpy(), inv


WARM_START_ROWS = 200_000
"""Above this many distinct rows, a fit starts from a fit on a sample of customers."""


def warm_started(solve: Callable[..., tuple[T, np.ndarray | None]], w: np.ndarray, seed: int) -> T:
    """Fit with ``solve(rows, weights, start, hess_inv0, curvature)``, warm-started when large.

    Above ``WARM_START_ROWS`` distinct rows, ``solve`` first runs on a sample of
    ``WARM_START_ROWS // 4`` customers (drawn with the row weights, customers per distinct
    row, as probabilities; 50,000 by default: at 1M customers a sample of 25k to 100k
    leaves the same four full-data evaluations) and returns its optimum and inverse
    Hessian; the full-data fit then starts there (see :func:`minimize_nll`). ``rows``
    indexes the distinct rows.
    """
    start, hess_inv0 = None, None
    if len(w) > WARM_START_ROWS:
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(w), size=WARM_START_ROWS // 4, p=w / w.sum())
        idx, cnt = np.unique(pick, return_counts=True)
        start, hess_inv0 = solve(idx, cnt.astype(np.float64), None, None, True)
    return solve(slice(None), w, start, hess_inv0, False)[0]


Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]
"""``log_params -> (negative log-likelihood, its gradient)``."""


def autograd_objective(nll: Callable[..., Any], args: tuple[Any, ...]) -> Objective:
    """A lifetimes ``_negative_log_likelihood(log_params, *args)`` with autograd's gradient."""
    from autograd import value_and_grad

    fun = value_and_grad(nll)
    return lambda x: fun(x, *args)


RIDGE_GRADIENT = 1e-3
"""Largest gradient (of the mean log-likelihood per customer, per log-parameter) accepted at a
point no line search can improve: a ridge towards an optimum at infinity."""


def minimize_nll(
    fun: Objective,
    n_params: int,
    model: str,
    tol: float = 1e-7,
    x0: np.ndarray | None = None,
    hess_inv0: np.ndarray | None = None,
    curvature: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Minimise a negative log-likelihood over log-parameters.

    lifetimes' own optimiser (BFGS from ``0.1`` in every log-parameter, as in
    ``BaseFitter._fit``) minus the Hessian that only feeds standard errors. A fit on a
    sample passes its optimum as ``x0`` and its inverse Hessian as ``hess_inv0`` (the
    likelihood is a mean per customer, so its curvature does not depend on how many there
    are): the full-data BFGS then converges in a handful of evaluations instead of twenty.

    Returns
    -------
    x, hess_inv
        Log-parameters at the optimum, and with ``curvature`` the inverse of the Hessian
        there (finite differences of the gradient; None when it is not positive definite
        or not asked for).

    Raises
    ------
    lifetimes.utils.ConvergenceError
        When neither BFGS nor an L-BFGS-B polish reaches a point where the gradient vanishes.
    """
    from scipy.optimize import approx_fprime, minimize

    start = 0.1 * np.ones(n_params) if x0 is None else x0
    options = {} if hess_inv0 is None else {"hess_inv0": hess_inv0}
    out = minimize(fun, x0=start, jac=True, tol=tol, method="BFGS", options=options)
    if not out.success and np.all(np.isfinite(out.x)):
        # BFGS often stops on "precision loss" at the optimum of a flat likelihood (which
        # side of the tolerance it lands on depends on the numpy/scipy build): polish with
        # L-BFGS-B and accept a point where the gradient vanishes, or a ridge: the optimum
        # lies at infinity along a direction (e.g. Beta parameters growing together as the
        # mixing distribution becomes a point mass), the gradient there is small but not
        # zero, and no step lowers the objective any more.
        polish = minimize(fun, x0=out.x, jac=True, tol=tol, method="L-BFGS-B")
        grad = float(np.max(np.abs(fun(polish.x)[1])))
        stuck = polish.fun >= out.fun - 1e-12 * max(1.0, abs(out.fun))
        if polish.success or grad < 1e-5 or (stuck and grad < RIDGE_GRADIENT):
            out = polish
            out.success = True
    if not out.success or not np.all(np.isfinite(out.x)):
        from valuation.base import import_lifetimes

        raise import_lifetimes().utils.ConvergenceError(f"{model}: {out.message}")
    if not curvature:
        return out.x, None
    hess = approx_fprime(out.x, lambda x: fun(x)[1], 1e-6)
    return out.x, _inverse_if_positive_definite(np.atleast_2d(hess))


def _inverse_if_positive_definite(h: np.ndarray) -> np.ndarray | None:
    h = 0.5 * (h + h.T)
    try:
        np.linalg.cholesky(h)
    except np.linalg.LinAlgError:
        return None
    inv = np.linalg.inv(h)
    return 0.5 * (inv + inv.T)
