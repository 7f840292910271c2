"""Model registry and ``model = "auto"``: the purchase model with the lowest holdout MAE."""

from __future__ import annotations

import math
from collections.abc import Mapping

from valuation.base import PurchaseModel, ValuationError
from valuation.bgnbd import BetaGeoModel, ModifiedBetaGeoModel
from valuation.pareto import ParetoNBDModel

PURCHASE_MODELS: dict[str, type[PurchaseModel]] = {
    "bgnbd": BetaGeoModel,
    "mbgnbd": ModifiedBetaGeoModel,
    "pareto": ParetoNBDModel,
}
AUTO_CANDIDATES: tuple[str, ...] = ("bgnbd", "mbgnbd", "pareto")


def make_purchase_model(name: str, penalizer: float = 0.0) -> PurchaseModel:
    """A new, unfitted purchase model by config name (``bgnbd``, ``mbgnbd``, ``pareto``)."""
    try:
        cls = PURCHASE_MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown purchase model {name!r}; expected one of {sorted(PURCHASE_MODELS)}"
        ) from None
    return cls(penalizer=penalizer)


def select_by_mae(metrics: Mapping[str, Mapping[str, float] | None]) -> str:
    """Name of the model with the lowest holdout ``mae`` (failed models map to None).

    Ties go to the first model in ``metrics`` order (simplest first: bgnbd, mbgnbd, pareto).

    Raises
    ------
    ValuationError
        When no model has a finite MAE.
    """
    best: str | None = None
    best_mae = math.inf
    for name, m in metrics.items():
        if m is None:
            continue
        mae = float(m["mae"])
        if math.isfinite(mae) and mae < best_mae:
            best, best_mae = name, mae
    if best is None:
        raise ValuationError(
            f"model=auto: none of {list(metrics)} could be fitted on the holdout cut. Try a "
            "larger valuation.penalizer or a fixed valuation.model."
        )
    return best
