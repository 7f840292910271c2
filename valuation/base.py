"""The value estimators' base (plain-data fitted models), input conversion and checks, errors,
the lifetimes wrapper."""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
import polars as pl
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from valuation.optimize import compress

BTYD_COLUMNS: tuple[str, ...] = ("frequency", "recency", "T")
SPEND_COLUMNS: tuple[str, ...] = ("frequency", "monetary_value")

ArrayLike = np.ndarray | Sequence[float]
FrameLike = pl.DataFrame | pd.DataFrame | Mapping[str, ArrayLike] | np.ndarray


class ValuationError(ValueError):
    """A valuation model that cannot be fitted or used; the message names the model and a fix."""


def import_lifetimes() -> ModuleType:
    """Import :mod:`lifetimes` with its import-time deprecation warnings silenced locally."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        import lifetimes
        import lifetimes.utils
    return lifetimes


@contextlib.contextmanager
def quiet_lifetimes() -> Iterator[None]:
    """Contain lifetimes' side effects while it runs.

    lifetimes calls ``warnings.simplefilter`` inside its likelihoods (a global change that
    ``catch_warnings`` undoes on exit), emits numpy overflow warnings on extreme parameter
    trials and prints the optimizer output on a convergence failure (stdout is captured).
    """
    with (
        warnings.catch_warnings(),
        np.errstate(all="ignore"),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def as_columns(X: FrameLike, columns: Sequence[str], what: str) -> dict[str, np.ndarray]:
    """Float64 numpy columns from a Polars/pandas frame, a mapping or a 2-D array.

    A 2-D array must hold the columns in the order of ``columns``.
    """
    if isinstance(X, np.ndarray):
        arr = np.asarray(X, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(columns):
            raise ValueError(
                f"{what}: a 2-D array with {len(columns)} columns ({', '.join(columns)}) is "
                f"expected, got shape {arr.shape}"
            )
        return {c: np.ascontiguousarray(arr[:, i]) for i, c in enumerate(columns)}
    if isinstance(X, pl.DataFrame):
        names = X.columns
    elif isinstance(X, pd.DataFrame):
        names = list(X.columns)
    elif isinstance(X, Mapping):
        names = list(X)
    else:
        raise TypeError(f"{what}: unsupported input type {type(X).__name__}")
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; got {list(names)}")
    out: dict[str, np.ndarray] = {}
    for c in columns:
        if isinstance(X, pl.DataFrame):
            col = X.get_column(c).cast(pl.Float64).to_numpy()
        elif isinstance(X, pd.DataFrame):
            col = X[c].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            col = np.asarray(X[c], dtype=np.float64)
        out[c] = np.ascontiguousarray(col, dtype=np.float64)
    n = {len(v) for v in out.values()}
    if len(n) > 1:
        raise ValueError(f"{what}: columns have different lengths {sorted(n)}")
    return out


def check_btyd(cols: Mapping[str, np.ndarray], what: str) -> None:
    """Validate frequency/recency/T arrays (finite, integer frequency, 0 <= recency <= T)."""
    f, r, t = cols["frequency"], cols["recency"], cols["T"]
    if len(f) == 0:
        raise ValueError(f"{what}: no customers")
    for name, a in (("frequency", f), ("recency", r), ("T", t)):
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(f"{what}: {int(bad.sum())} non-finite value(s) in {name}")
    problems = [
        ("frequency < 0 or not an integer", (f < 0) | (f != np.round(f))),
        ("recency < 0", r < 0),
        ("recency > T", r > t + 1e-9),
        ("frequency = 0 with recency != 0", (f == 0) & (r != 0)),
    ]
    for label, mask in problems:
        if mask.any():
            raise ValueError(f"{what}: {int(mask.sum())} customer(s) with {label}")


W = TypeVar("W", bound="ValueEstimator")


def check_finite_params(model: str, params: Mapping[str, float]) -> None:
    """Raise :class:`ValuationError` when a fitted parameter is NaN, infinite or <= 0."""
    bad = {k: v for k, v in params.items() if not (math.isfinite(v) and v > 0)}
    if bad:
        raise ValuationError(
            f"{model} fit produced invalid parameters {bad}; the optimiser did not converge. "
            "Try a larger valuation.penalizer (e.g. 0.001-0.1) or check the input for "
            "extreme frequencies."
        )


def check_finite_output(model: str, name: str, values: np.ndarray) -> np.ndarray:
    """Raise :class:`ValuationError` when a prediction holds NaN or infinite values."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValuationError(
            f"{model} produced {int(bad.sum())} non-finite {name} value(s) out of {len(values)}; "
            "the fitted parameters are numerically unstable for these customers. Try a larger "
            "valuation.penalizer or another valuation.model."
        )
    return values


class ValueEstimator(BaseEstimator):
    """Base of every value model (purchase, spend and contract retention models).

    ``__init__`` stores hyperparameters only; ``fit`` learns plain numbers ending in ``_``,
    among them ``params_`` (a mapping of names to floats). So a fitted model is plain data
    (:meth:`to_dict`, :meth:`from_dict`): stored as JSON, never pickled.
    """

    model_name: ClassVar[str] = ""
    _param_names: ClassVar[tuple[str, ...]] = ()
    """The keys ``params_`` must hold (empty: any, e.g. a regression's coefficients)."""

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as JSON-able data: ``model`` (its name), ``init`` (``get_params``)
        and ``fitted`` (every learned attribute: numbers, and ``params_``)."""
        check_is_fitted(self, "params_")
        fitted = {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}
        return {"model": self.model_name, "init": self.get_params(deep=False), "fitted": fitted}

    @classmethod
    def from_dict(cls: type[W], d: Mapping[str, Any]) -> W:
        """Rebuild a model written by :meth:`to_dict` (predictions equal the original's).

        Raises
        ------
        ValuationError
            When ``d`` is another model's, or holds anything but numbers as learned values.
        """
        if not isinstance(d, Mapping) or d.get("model") != cls.model_name:
            got = d.get("model") if isinstance(d, Mapping) else type(d).__name__
            raise ValuationError(f"expected a {cls.model_name!r} model, got {got!r}")
        try:
            model = cls(**dict(d.get("init", {})))
        except TypeError as e:
            raise ValuationError(f"{cls.model_name}: {e}") from None
        fitted = d.get("fitted", {})
        for name, value in fitted.items():
            values = value.values() if isinstance(value, Mapping) else [value]
            numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
            if not (name.endswith("_") and not name.startswith("_") and numbers):
                raise ValuationError(f"{cls.model_name}: {name!r} is not a fitted number")
            setattr(model, name, dict(value) if isinstance(value, Mapping) else value)
        params = fitted.get("params_", None)
        if not isinstance(params, Mapping) or (
            cls._param_names and set(params) != set(cls._param_names)
        ):
            raise ValuationError(
                f"{cls.model_name}: params_ should hold {list(cls._param_names) or 'numbers'}, "
                f"got {sorted(params) if isinstance(params, Mapping) else params!r}"
            )
        return model


class LifetimesWrapper(ValueEstimator):
    """Base of our estimators around a lifetimes fitter.

    Subclasses name the lifetimes fitter class and its parameters. Only plain floats are
    kept after ``fit`` (``params_``), so a fitted model is plain data (:meth:`to_dict`);
    predictions build a fresh lifetimes fitter from ``params_`` each time.
    """

    _fitter_class: ClassVar[str] = ""

    penalizer: float

    def _new_fitter(self) -> Any:
        lifetimes = import_lifetimes()
        fitter = getattr(lifetimes, self._fitter_class)(penalizer_coef=self.penalizer)
        return fitter

    def _fitted_fitter(self) -> Any:
        check_is_fitted(self, "params_")
        fitter = self._new_fitter()
        fitter.params_ = pd.Series(
            [self.params_[k] for k in self._param_names],
            index=list(self._param_names),
            dtype=np.float64,
        )
        return fitter

    def _run_fit(self, fit: Callable[[], Any]) -> Any:
        lifetimes = import_lifetimes()
        try:
            with quiet_lifetimes():
                return fit()
        except lifetimes.utils.ConvergenceError as e:
            raise ValuationError(
                f"{self.model_name} fit did not converge (penalizer={self.penalizer}). Try a "
                "larger valuation.penalizer (e.g. 0.001-0.1) or another valuation.model."
            ) from e
        except (np.linalg.LinAlgError, FloatingPointError, OverflowError) as e:
            raise ValuationError(
                f"{self.model_name} fit failed numerically ({e}). Try a larger "
                "valuation.penalizer (e.g. 0.001-0.1) or another valuation.model."
            ) from e


class PurchaseModel(LifetimesWrapper):
    """Base of the purchase-count models (BG/NBD, Modified BG/NBD, Pareto/NBD).

    Parameters
    ----------
    penalizer
        L2 penalty on the parameters (lifetimes' ``penalizer_coef``); raise it when a fit
        does not converge.

    Attributes
    ----------
    params_ : dict[str, float]
        Fitted parameters in the time unit of the input (days in this project).
    log_likelihood_ : float
        Total log-likelihood of the fitted customers (without the penalty).
    n_customers_ : int
        Number of customers fitted (sum of the weights).
    n_triples_ : int
        Number of distinct (frequency, recency, T) triples the likelihood was evaluated on.
    time_scale_ : float
        ``1 / max(T)`` of the fit: lifetimes' internal time scale, also used to predict.
    """

    frequency0_dropout: ClassVar[bool] = True
    """Whether a customer without a repeat purchase (frequency 0) can be dead: P(alive) < 1."""

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

    # --- hooks -------------------------------------------------------------------------
    def _fit_kwargs(self) -> dict[str, Any]:
        return {}

    def _fit_params(self, u: Mapping[str, np.ndarray], w: np.ndarray) -> dict[str, float]:
        """Fit on distinct triples ``u`` with weights ``w``; return the parameters."""
        fitter = self._new_fitter()
        fitter.fit(
            u["frequency"].astype(np.int64),
            u["recency"],
            u["T"],
            weights=w,
            **self._fit_kwargs(),
        )
        return {k: float(fitter.params_[k]) for k in self._param_names}

    _rate_params: ClassVar[tuple[str, ...]] = ()
    """Parameters with the unit of time (scaled with it)."""

    def _scaled_log_likelihood(
        self, params: Mapping[str, float], u: Mapping[str, np.ndarray], w: np.ndarray
    ) -> float:
        raise NotImplementedError

    def _total_log_likelihood(
        self, params: Mapping[str, float], u: Mapping[str, np.ndarray], w: np.ndarray
    ) -> float:
        """Log-likelihood in the input's time unit, evaluated (as lifetimes fits) with time
        scaled to max T = 1, where the hypergeometric terms stay finite.

        Rescaling time by ``c`` multiplies the density of ``x`` purchase times by ``c**x``.
        """
        c = 1.0 / float(u["T"].max())
        scaled = {k: (v * c if k in self._rate_params else v) for k, v in params.items()}
        su = {"frequency": u["frequency"], "recency": u["recency"] * c, "T": u["T"] * c}
        ll = self._scaled_log_likelihood(scaled, su, w)
        return ll + math.log(c) * float((w * u["frequency"]).sum())

    # --- fitting -----------------------------------------------------------------------
    def fit(
        self, X: FrameLike, y: None = None, sample_weight: np.ndarray | None = None
    ) -> PurchaseModel:
        """Fit on customers' (frequency, recency, T), compressed to distinct triples.

        Parameters
        ----------
        X
            Frame or mapping with columns ``frequency``, ``recency``, ``T`` (or a 2-D array
            in that column order). Time unit: days.
        y
            Ignored (sklearn convention).
        sample_weight
            Optional count of customers per row (for inputs that are already compressed,
            e.g. sufficient statistics from a distributed backend).

        Returns
        -------
        self

        Raises
        ------
        ValuationError
            When the optimiser does not converge or the parameters are not finite.
        """
        if self.penalizer < 0:
            raise ValueError(f"penalizer={self.penalizer} should be >= 0")
        cols = as_columns(X, BTYD_COLUMNS, self.model_name)
        check_btyd(cols, self.model_name)
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape != cols["frequency"].shape or (sample_weight < 0).any():
                raise ValueError(f"{self.model_name}: sample_weight must be >= 0, one per row")
        u, w, _ = compress(cols, sample_weight, inverse=False)
        if u["T"].max() <= 0:
            raise ValuationError(
                f"{self.model_name}: every customer has T=0; nothing to fit (need customers "
                "observed for at least one day after their first purchase)"
            )
        params = self._run_fit(lambda: self._fit_params(u, w))
        check_finite_params(self.model_name, params)
        self.params_ = params
        self.time_scale_ = 1.0 / float(u["T"].max())
        with quiet_lifetimes():
            ll = self._total_log_likelihood(params, u, w)
        if not math.isfinite(ll):
            raise ValuationError(
                f"{self.model_name}: non-finite log-likelihood at the fitted parameters "
                f"{params}. Try a larger valuation.penalizer."
            )
        self.log_likelihood_ = float(ll)
        self.n_customers_ = round(float(w.sum()))
        self.n_triples_ = len(w)
        return self

    # --- prediction --------------------------------------------------------------------
    def _scaled_fitter(self) -> Any:
        # Predictions are invariant to the time unit; evaluating them in the time scale of
        # the fit (max T = 1) keeps lifetimes' hypergeometric terms finite where the day
        # scale overflows (e.g. Pareto/NBD with beta in the thousands of days).
        fitter = self._fitted_fitter()
        for k in self._rate_params:
            fitter.params_[k] = self.params_[k] * self.time_scale_
        return fitter

    def _on_unique(
        self, X: FrameLike, name: str, fn: Callable[[Any, dict[str, np.ndarray]], np.ndarray]
    ) -> np.ndarray:
        fitter = self._scaled_fitter()
        cols = as_columns(X, BTYD_COLUMNS, self.model_name)
        check_btyd(cols, self.model_name)
        u, _, inverse = compress(cols)
        u = {**u, "recency": u["recency"] * self.time_scale_, "T": u["T"] * self.time_scale_}
        with quiet_lifetimes():
            out = np.asarray(fn(fitter, u), dtype=np.float64)
        check_finite_output(self.model_name, name, out.ravel())
        return out if inverse is None else out[inverse]

    def expected_purchases(self, X: FrameLike, t: float | ArrayLike) -> np.ndarray:
        """Expected repeat purchases in the next ``t`` days given each customer's history.

        Parameters
        ----------
        X
            Columns ``frequency``, ``recency``, ``T``.
        t
            A horizon in days, or a 1-D array of horizons.

        Returns
        -------
        numpy.ndarray
            Shape ``(n,)`` for a scalar ``t``, ``(n, len(t))`` for an array.
        """
        ts = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if ts.ndim != 1 or (ts < 0).any():
            raise ValueError(f"t must be >= 0 days, got {t!r}")

        def fn(fitter: Any, u: dict[str, np.ndarray]) -> np.ndarray:
            cols = []
            for tk in ts:
                if tk == 0:
                    cols.append(np.zeros(len(u["T"])))
                    continue
                cols.append(
                    np.asarray(
                        fitter.conditional_expected_number_of_purchases_up_to_time(
                            tk * self.time_scale_, u["frequency"], u["recency"], u["T"]
                        ),
                        dtype=np.float64,
                    )
                )
            return np.column_stack(cols)

        out = self._on_unique(X, "expected_purchases", fn)
        return out[:, 0] if np.ndim(t) == 0 else out

    def p_alive(self, X: FrameLike) -> np.ndarray:
        """Probability that each customer is still active (still purchasing)."""

        def fn(fitter: Any, u: dict[str, np.ndarray]) -> np.ndarray:
            p = fitter.conditional_probability_alive(u["frequency"], u["recency"], u["T"])
            return np.clip(np.asarray(p, dtype=np.float64).reshape(-1), 0.0, 1.0)

        return self._on_unique(X, "p_alive", fn)

    def score(self, X: FrameLike, y: None = None) -> float:
        """Mean log-likelihood per customer of ``X`` under the fitted parameters."""
        check_is_fitted(self, "params_")
        cols = as_columns(X, BTYD_COLUMNS, self.model_name)
        check_btyd(cols, self.model_name)
        u, w, _ = compress(cols, inverse=False)
        with quiet_lifetimes():
            return float(self._total_log_likelihood(self.params_, u, w) / w.sum())

    def population_rates(self) -> dict[str, float]:
        """Population means of the latent rates (per day): ``purchase_rate`` and more."""
        raise NotImplementedError
