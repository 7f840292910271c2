"""BG/NBD (Fader, Hardie and Lee 2005) and Modified BG/NBD (Batislam et al. 2007)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from valuation.base import PurchaseModel, import_lifetimes
from valuation.likelihood import BetaGeoLikelihood
from valuation.optimize import Objective, autograd_objective, minimize_nll, warm_started


class BetaGeoModel(PurchaseModel):
    """BG/NBD purchase model: Poisson purchases while alive, death after a purchase.

    Parameters ``r, alpha`` (Gamma heterogeneity of the daily purchase rate) and ``a, b``
    (Beta heterogeneity of the dropout probability after each purchase).

    Parameters
    ----------
    penalizer
        L2 penalty on the parameters (lifetimes' ``penalizer_coef``).

    Examples
    --------
    >>> model = BetaGeoModel().fit(profile)  # doctest: +SKIP
    >>> model.expected_purchases(profile, t=365)  # doctest: +SKIP
    """

    model_name: ClassVar[str] = "bgnbd"
    _fitter_class: ClassVar[str] = "BetaGeoFitter"
    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    _rate_params: ClassVar[tuple[str, ...]] = ("alpha",)
    # A customer drops out only right after a repeat purchase: without one, P(alive) = 1
    # however long the silence (see valuation.split).
    frequency0_dropout: ClassVar[bool] = False

    def __init__(self, penalizer: float = 0.0, tol: float = 1e-7, seed: int = 0) -> None:
        self.penalizer = penalizer
        self.tol = tol
        self.seed = seed

    def _minimize(
        self,
        u: Mapping[str, np.ndarray],
        w: np.ndarray,
        start: Mapping[str, float] | None = None,
        hess_inv0: np.ndarray | None = None,
        curvature: bool = False,
    ) -> tuple[dict[str, float], np.ndarray | None]:
        # lifetimes' likelihood on log-parameters, time scaled so that max T = 1. A different
        # time scale only shifts log(alpha), so a sample's curvature carries over.
        scale = 1.0 / float(u["T"].max())
        fun = self._objective(u, w, self.penalizer, scale)
        x0 = None
        if start is not None:
            x0 = np.log([start["r"], start["alpha"] * scale, start["a"], start["b"]])
        x, hess_inv = minimize_nll(
            fun, 4, self.model_name, self.tol, x0, hess_inv0, curvature=curvature
        )
        r, alpha, a, b = np.exp(x)
        return {"r": float(r), "alpha": float(alpha / scale), "a": float(a), "b": float(b)}, (
            hess_inv
        )

    def _objective(
        self, u: Mapping[str, np.ndarray], w: np.ndarray, penalizer: float, scale: float
    ) -> Objective:
        """The negative log-likelihood of ``u`` with its gradient, time multiplied by ``scale``.

        lifetimes' BG/NBD likelihood, factored (:class:`BetaGeoLikelihood`).
        """
        return BetaGeoLikelihood(u["frequency"], u["recency"], u["T"], w, penalizer, scale)

    def _fit_params(self, u: Mapping[str, np.ndarray], w: np.ndarray) -> dict[str, float]:
        def solve(
            rows: np.ndarray | slice,
            weights: np.ndarray,
            start: Mapping[str, float] | None,
            hess_inv0: np.ndarray | None,
            curvature: bool,
        ) -> tuple[dict[str, float], np.ndarray | None]:
            sample = {k: v[rows] for k, v in u.items()}
            return self._minimize(sample, weights, start, hess_inv0, curvature)

        return warm_started(solve, w, self.seed)

    def _total_log_likelihood(
        self, params: Mapping[str, float], u: Mapping[str, np.ndarray], w: np.ndarray
    ) -> float:
        # The likelihood in days, evaluated in the time scale of the fit (max T = 1).
        scale = 1.0 / float(u["T"].max())
        log_params = np.log([params["r"], params["alpha"] * scale, params["a"], params["b"]])
        nll = float(self._objective(u, w, 0.0, scale)(log_params)[0])
        return -nll * float(w.sum()) + math.log(scale) * float((w * u["frequency"]).sum())

    def population_rates(self) -> dict[str, float]:
        """``purchase_rate`` = E[lambda] = r/alpha per day, ``dropout`` = E[p] = a/(a+b)."""
        p = self.params_
        return {"purchase_rate": p["r"] / p["alpha"], "dropout": p["a"] / (p["a"] + p["b"])}


class ModifiedBetaGeoModel(BetaGeoModel):
    """Modified BG/NBD: like BG/NBD, but a customer may also drop out at time zero.

    Unlike BG/NBD, customers without a repeat purchase get ``p_alive < 1``. Fitted with
    lifetimes' likelihood as it is, gradients by autograd.
    """

    model_name: ClassVar[str] = "mbgnbd"
    _fitter_class: ClassVar[str] = "ModifiedBetaGeoFitter"
    frequency0_dropout: ClassVar[bool] = True

    def _objective(
        self, u: Mapping[str, np.ndarray], w: np.ndarray, penalizer: float, scale: float
    ) -> Objective:
        nll = import_lifetimes().ModifiedBetaGeoFitter._negative_log_likelihood
        args = (u["frequency"].astype(np.int64), u["recency"] * scale, u["T"] * scale, w)
        return autograd_objective(nll, (*args, penalizer))


def simulate_bgnbd(
    n: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    max_T: int = 730,
    seed: int = 0,
    spend: tuple[float, float, float] | None = None,
) -> dict[str, np.ndarray]:
    """Draw BTYD summaries of ``n`` customers from a BG/NBD process (integer days).

    Each customer has a daily rate ``lambda ~ Gamma(r, 1/alpha)`` and a dropout probability
    ``p ~ Beta(a, b)``; after each repeat purchase they drop out with probability ``p``.
    ``T`` is uniform on ``1..max_T`` days; ``recency`` is floored to whole days.

    Parameters
    ----------
    n, r, alpha, a, b
        Customer count and the BG/NBD population parameters (per day).
    max_T
        Longest observation period in days.
    seed
        Seed of the numpy generator.
    spend
        Optional Gamma-Gamma ``(p, q, v)``: adds ``monetary_value`` (mean spend of the repeat
        purchases, 0 without one).

    Returns
    -------
    dict
        ``frequency``, ``recency``, ``T`` (float arrays), ``lambda``, ``p``, and
        ``monetary_value`` when ``spend`` is given.
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.integers(1, max_T + 1, n).astype(np.float64)
    alive_purchases = rng.geometric(np.clip(p, 1e-12, 1.0))
    events = rng.poisson(lam * T)
    x = np.minimum(alive_purchases, events)
    # The x-th of `events` uniform event times on [0, T] is Beta(x, events - x + 1) * T.
    pos = x > 0
    rec = np.zeros(n)
    rec[pos] = rng.beta(x[pos], events[pos] - x[pos] + 1) * T[pos]
    rec = np.floor(rec)
    out = {
        "frequency": x.astype(np.float64),
        "recency": np.where(pos, rec, 0.0),
        "T": T,
        "lambda": lam,
        "p": p,
    }
    if spend is not None:
        sp, sq, sv = spend
        nu = rng.gamma(sq, 1.0 / sv, n)
        m = np.zeros(n)
        m[pos] = rng.gamma(sp * x[pos], 1.0 / (nu[pos] * x[pos]))
        out["monetary_value"] = np.round(m, 2)
    return out
