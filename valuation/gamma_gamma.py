"""Gamma-Gamma spend model (Fader, Hardie and Lee 2005): expected value per purchase."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from sklearn.utils.validation import check_is_fitted

from valuation.base import (
    SPEND_COLUMNS,
    FrameLike,
    LifetimesWrapper,
    ValuationError,
    as_columns,
    check_finite_output,
    check_finite_params,
    quiet_lifetimes,
)
from valuation.likelihood import GammaGammaLikelihood
from valuation.optimize import compress, minimize_nll, warm_started


class GammaGammaModel(LifetimesWrapper):
    """Gamma-Gamma model of the mean spend per repeat purchase.

    Fitted on customers with ``frequency > 0`` and ``monetary_value > 0`` only (the model's
    support); the others get the population mean spend ``p * v / (q - 1)``.

    Parameters
    ----------
    penalizer
        L2 penalty on the parameters (lifetimes' ``penalizer_coef``).

    Attributes
    ----------
    params_ : dict[str, float]
        ``p``, ``q``, ``v``.
    log_likelihood_ : float
        Total log-likelihood of the fitted customers.
    n_customers_ : int
        Customers fitted (``frequency > 0`` and ``monetary_value > 0``).
    n_excluded_ : int
        Customers left out of the fit.
    population_mean_ : float
        Expected spend per purchase of a customer without history, ``p * v / (q - 1)``.
    frequency_monetary_corr_ : float
        Pearson correlation of frequency and monetary value among the fitted customers; the
        model assumes they are independent (values beyond about +-0.3 deserve a look).
    """

    model_name: ClassVar[str] = "gamma_gamma"
    _fitter_class: ClassVar[str] = "GammaGammaFitter"
    _param_names: ClassVar[tuple[str, ...]] = ("p", "q", "v")

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

    def fit(
        self, X: FrameLike, y: None = None, sample_weight: np.ndarray | None = None
    ) -> GammaGammaModel:
        """Fit on ``frequency`` and ``monetary_value`` (rows outside the support are skipped).

        Parameters
        ----------
        X
            Frame or mapping with columns ``frequency`` and ``monetary_value``.
        y
            Ignored.
        sample_weight
            Optional customer count per row.

        Returns
        -------
        self

        Raises
        ------
        ValuationError
            Too few customers with repeat purchases, no convergence, or ``q <= 1`` (no finite
            population mean).
        """
        cols = as_columns(X, SPEND_COLUMNS, self.model_name)
        f, m = cols["frequency"], cols["monetary_value"]
        w = np.ones_like(f) if sample_weight is None else np.asarray(sample_weight, np.float64)
        keep = np.isfinite(f) & np.isfinite(m) & (f > 0) & (m > 0) & (w > 0)
        n_keep = round(float(w[keep].sum()))
        if n_keep < 10:
            raise ValuationError(
                f"{self.model_name}: only {n_keep} customer(s) with a repeat purchase and a "
                "positive monetary value; at least 10 are needed to fit the spend model"
            )
        fk, mk, wk = f[keep], m[keep], w[keep]
        u, uw, _ = compress({"frequency": fk, "monetary_value": mk}, wk, inverse=False)
        x = self._run_fit(lambda: self._fit_log_params(u, uw))
        params = dict(zip(self._param_names, (float(v) for v in np.exp(x)), strict=True))
        check_finite_params(self.model_name, params)
        if params["q"] <= 1:
            raise ValuationError(
                f"{self.model_name}: fitted q={params['q']:.4g} <= 1, so the population mean "
                "spend is not finite. Try a larger valuation.penalizer."
            )
        self.params_ = params
        nll, _ = GammaGammaLikelihood(u["frequency"], u["monetary_value"], uw)(
            np.log([params[k] for k in self._param_names])
        )
        self.log_likelihood_ = float(-nll * uw.sum())
        self.n_customers_ = n_keep
        self.n_excluded_ = round(float(w.sum())) - n_keep
        self.population_mean_ = params["p"] * params["v"] / (params["q"] - 1)
        if len(fk) > 1 and np.std(fk) > 0 and np.std(mk) > 0:
            mean_f = np.average(fk, weights=wk)
            mean_m = np.average(mk, weights=wk)
            cov = np.average((fk - mean_f) * (mk - mean_m), weights=wk)
            var_f = np.average((fk - mean_f) ** 2, weights=wk)
            var_m = np.average((mk - mean_m) ** 2, weights=wk)
            corr = float(cov / math.sqrt(var_f * var_m))
        else:
            corr = float("nan")
        self.frequency_monetary_corr_ = corr
        return self

    def _fit_log_params(self, u: dict[str, np.ndarray], w: np.ndarray) -> np.ndarray:
        # lifetimes' likelihood (factored, see ``valuation.likelihood``) and optimiser,
        # warm-started on large inputs (``warm_started``).
        def solve(
            idx: np.ndarray | slice,
            weights: np.ndarray,
            x0: np.ndarray | None,
            hess_inv0: np.ndarray | None,
            curvature: bool,
        ) -> tuple[np.ndarray, np.ndarray | None]:
            fun = GammaGammaLikelihood(
                u["frequency"][idx], u["monetary_value"][idx], weights, self.penalizer
            )
            return minimize_nll(
                fun, 3, self.model_name, x0=x0, hess_inv0=hess_inv0, curvature=curvature
            )

        return warm_started(solve, w, seed=0)

    def expected_avg_value(self, X: FrameLike) -> np.ndarray:
        """Expected spend per future purchase, never negative.

        Customers with ``frequency > 0`` and ``monetary_value > 0`` get the Gamma-Gamma
        conditional expectation (a blend of their own mean and the population mean); the
        others get :attr:`population_mean_`.
        """
        check_is_fitted(self, "params_")
        cols = as_columns(X, SPEND_COLUMNS, self.model_name)
        f, m = cols["frequency"], cols["monetary_value"]
        out = np.full(len(f), self.population_mean_, dtype=np.float64)
        ok = np.isfinite(f) & np.isfinite(m) & (f > 0) & (m > 0)
        if ok.any():
            fitter = self._fitted_fitter()
            with quiet_lifetimes():
                out[ok] = np.asarray(
                    fitter.conditional_expected_average_profit(f[ok], m[ok]), dtype=np.float64
                )
        check_finite_output(self.model_name, "expected_avg_value", out)
        return np.maximum(out, 0.0)
