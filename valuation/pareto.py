"""Pareto/NBD (Schmittlein, Morrison and Colombo 1987): exponential lifetimes, Poisson purchases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from valuation.base import PurchaseModel, import_lifetimes


class ParetoNBDModel(PurchaseModel):
    """Pareto/NBD purchase model.

    Parameters ``r, alpha`` (Gamma heterogeneity of the daily purchase rate) and ``s, beta``
    (Gamma heterogeneity of the daily dropout rate). Fitted by Nelder-Mead from a fixed start
    (lifetimes would otherwise draw a random start from numpy's global generator).

    Parameters
    ----------
    penalizer
        L2 penalty on the parameters (lifetimes' ``penalizer_coef``).
    tol
        Nelder-Mead tolerance on the (time-scaled) parameters and objective.
    max_iter
        Maximum Nelder-Mead iterations.
    """

    model_name: ClassVar[str] = "pareto"
    _fitter_class: ClassVar[str] = "ParetoNBDFitter"
    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")
    _rate_params: ClassVar[tuple[str, ...]] = ("alpha", "beta")

    def __init__(self, penalizer: float = 0.0, tol: float = 1e-7, max_iter: int = 4000) -> None:
        self.penalizer = penalizer
        self.tol = tol
        self.max_iter = max_iter

    def _fit_kwargs(self) -> dict[str, Any]:
        return {"initial_params": np.ones(4), "tol": self.tol, "maxiter": self.max_iter}

    def _scaled_log_likelihood(
        self, params: Mapping[str, float], u: Mapping[str, np.ndarray], w: np.ndarray
    ) -> float:
        fitter_cls = getattr(import_lifetimes(), self._fitter_class)
        ll = fitter_cls._conditional_log_likelihood(
            [params[k] for k in self._param_names], u["frequency"], u["recency"], u["T"]
        )
        return float((w * np.asarray(ll)).sum())

    def population_rates(self) -> dict[str, float]:
        """``purchase_rate`` = E[lambda] = r/alpha, ``dropout_rate`` = E[mu] = s/beta (per day)."""
        p = self.params_
        return {"purchase_rate": p["r"] / p["alpha"], "dropout_rate": p["s"] / p["beta"]}
