"""A purchase model whose customers without a repeat purchase are scored by a second model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from valuation.base import (
    BTYD_COLUMNS,
    ArrayLike,
    FrameLike,
    PurchaseModel,
    as_columns,
    check_btyd,
)

SPLIT_MODEL = "frequency0_split"
"""The stored name of a :class:`FrequencyZeroSplit` (its ``model_name`` is its repeat model's)."""


class FrequencyZeroSplit(PurchaseModel):
    """``repeat`` for customers with a repeat purchase, ``frequency0`` for those without.

    BG/NBD lets a customer drop out only right after a repeat purchase, so every customer
    with frequency 0 (one purchase day, or none) gets P(alive) = 1 however long they have
    been silent. This pairs such a model with one that can express their dropout (MBG/NBD:
    the same purchase process plus a dropout chance at the first purchase). Both are fitted
    on the same customers; a row with frequency 0 takes all its predictions (P(alive),
    expected purchases) from ``frequency0``, so the numbers of one customer come from one
    model. Name, parameters, log-likelihood and population rates are those of ``repeat``.

    Parameters
    ----------
    repeat
        The purchase model of the customers with a repeat purchase (unfitted; cloned).
    frequency0
        The model of the customers without one (unfitted; cloned); its
        ``frequency0_dropout`` must be true.
    """

    def __init__(self, repeat: PurchaseModel, frequency0: PurchaseModel) -> None:
        self.repeat = repeat
        self.frequency0 = frequency0

    @property  # type: ignore[override]
    def model_name(self) -> str:  # the name of the model that describes the population
        return self.repeat.model_name

    @property  # type: ignore[override]
    def penalizer(self) -> float:
        return self.repeat.penalizer

    def fit(
        self, X: FrameLike, y: None = None, sample_weight: np.ndarray | None = None
    ) -> FrequencyZeroSplit:
        """Fit both models on the same customers (see :meth:`PurchaseModel.fit`).

        Returns
        -------
        self
        """
        if not self.frequency0.frequency0_dropout:
            raise ValueError(
                f"frequency0={self.frequency0.model_name!r} gives P(alive) = 1 without a "
                "repeat purchase too; use mbgnbd or pareto"
            )
        return self._adopt(
            clone(self.repeat).fit(X, sample_weight=sample_weight),
            clone(self.frequency0).fit(X, sample_weight=sample_weight),
        )

    def _adopt(self, repeat: PurchaseModel, frequency0: PurchaseModel) -> FrequencyZeroSplit:
        self.repeat_ = repeat
        self.frequency0_ = frequency0
        self.params_ = dict(repeat.params_)
        self.log_likelihood_ = repeat.log_likelihood_
        self.n_customers_ = repeat.n_customers_
        self.n_triples_ = repeat.n_triples_
        self.time_scale_ = repeat.time_scale_
        return self

    @classmethod
    def from_fitted(cls, repeat: PurchaseModel, frequency0: PurchaseModel) -> FrequencyZeroSplit:
        """The split of two fitted models (as :meth:`fit` would leave it)."""
        check_is_fitted(repeat, "params_")
        check_is_fitted(frequency0, "params_")
        return cls(repeat, frequency0)._adopt(repeat, frequency0)

    def to_dict(self) -> dict[str, Any]:
        """Both fitted models as data (``valuation.store`` reads it back)."""
        check_is_fitted(self, "repeat_")
        return {
            "model": SPLIT_MODEL,
            "repeat": self.repeat_.to_dict(),
            "frequency0": self.frequency0_.to_dict(),
        }

    def _route(
        self, X: FrameLike, predict: Callable[[PurchaseModel, dict[str, np.ndarray]], np.ndarray]
    ) -> np.ndarray:
        check_is_fitted(self, "repeat_")
        cols = as_columns(X, BTYD_COLUMNS, self.model_name)
        check_btyd(cols, self.model_name)
        zero = cols["frequency"] == 0
        out: np.ndarray | None = None
        for model, rows in ((self.repeat_, ~zero), (self.frequency0_, zero)):
            if not rows.any():
                continue
            part = predict(model, {c: v[rows] for c, v in cols.items()})
            if out is None:
                out = np.empty((zero.size, *part.shape[1:]), dtype=np.float64)
            out[rows] = part
        assert out is not None  # check_btyd refuses an empty input
        return out

    def expected_purchases(self, X: FrameLike, t: float | ArrayLike) -> np.ndarray:
        """Expected repeat purchases in the next ``t`` days (see the base class)."""
        return self._route(X, lambda m, cols: m.expected_purchases(cols, t))

    def p_alive(self, X: FrameLike) -> np.ndarray:
        """P(alive): from ``frequency0`` for frequency 0, from ``repeat`` otherwise."""
        return self._route(X, lambda m, cols: m.p_alive(cols))

    def score(self, X: FrameLike, y: None = None) -> float:
        """Mean log-likelihood per customer under ``repeat`` (the model of the population)."""
        check_is_fitted(self, "repeat_")
        return self.repeat_.score(X)

    def population_rates(self) -> dict[str, float]:
        """The population rates of ``repeat`` (per day)."""
        check_is_fitted(self, "repeat_")
        return self.repeat_.population_rates()
