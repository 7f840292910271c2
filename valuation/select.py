"""Model registries (purchase and contract models) and ``model = "auto"``: the purchase model
with the lowest holdout MAE."""

from __future__ import annotations

import math
from collections.abc import Mapping

from crm_engine.config import ValuationConfig
from valuation.base import PurchaseModel, ValuationError
from valuation.bgnbd import BetaGeoModel, ModifiedBetaGeoModel
from valuation.contract import SBG, ContractModel, SBGModel
from valuation.hazard import HAZARD, HazardModel
from valuation.pareto import ParetoNBDModel
from valuation.split import FrequencyZeroSplit

PURCHASE_MODELS: dict[str, type[PurchaseModel]] = {
    "bgnbd": BetaGeoModel,
    "mbgnbd": ModifiedBetaGeoModel,
    "pareto": ParetoNBDModel,
}
AUTO_CANDIDATES: tuple[str, ...] = ("bgnbd", "mbgnbd", "pareto")
CONTRACT_MODELS: dict[str, type[ContractModel]] = {SBG: SBGModel, HAZARD: HazardModel}
"""The postpaid retention models by ``value_model`` name (what a stored model may name)."""
FREQUENCY0_MODEL = "mbgnbd"
"""Scores the customers without a repeat purchase when the purchase model gives them
P(alive) = 1 (BG/NBD): BG/NBD's purchase process plus a dropout chance at the first purchase,
fitted in about a second where Pareto/NBD's Nelder-Mead takes ten (20k customers)."""


def make_purchase_model(name: str, penalizer: float = 0.0) -> PurchaseModel:
    """A new, unfitted purchase model by config name (``bgnbd``, ``mbgnbd``, ``pareto``)."""
    try:
        cls = PURCHASE_MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown purchase model {name!r}; expected one of {sorted(PURCHASE_MODELS)}"
        ) from None
    return cls(penalizer=penalizer)


def scoring_model(name: str, penalizer: float = 0.0) -> PurchaseModel:
    """The unfitted model that values customers under purchase model ``name``.

    ``name`` itself when it lets a customer without a repeat purchase be dead; otherwise
    (BG/NBD) a :class:`~valuation.split.FrequencyZeroSplit` that scores those customers with
    :data:`FREQUENCY0_MODEL`, so that a one-time buyer silent for two years is not alive for
    sure. The holdout and the final fit both use it: what is validated is what scores.
    """
    model = make_purchase_model(name, penalizer)
    if model.frequency0_dropout:
        return model
    return FrequencyZeroSplit(model, make_purchase_model(FREQUENCY0_MODEL, penalizer))


def frequency0_model(model: PurchaseModel) -> PurchaseModel:
    """The (fitted) model that scores the customers without a repeat purchase in ``model``."""
    return model.frequency0_ if isinstance(model, FrequencyZeroSplit) else model


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


POSTPAID_CHOICES: dict[str, tuple[str, ...]] = {
    "contract": (SBG,),
    HAZARD: (HAZARD,),
    "auto": (SBG, HAZARD),
    "btyd": (),
}
"""``valuation.postpaid_model`` -> the contract models it fits (``auto``: the candidates the
revenue holdout chooses among, with the purchase model)."""


def contract_candidates(cfg: ValuationConfig, measured: bool = False) -> tuple[str, ...]:
    """The contract models ``cfg.postpaid_model`` fits (empty for ``btyd``); ``measured``: the
    ones the revenue holdout compares (``btyd`` still measures the sBG beside the purchase
    model, so the report shows what a contract model would have done)."""
    names = POSTPAID_CHOICES[cfg.postpaid_model]
    return names or (SBG,) if measured else names


def make_contract_model(name: str, cfg: ValuationConfig) -> ContractModel:
    """A new, unfitted contract model by name (``sbg``, ``hazard``), set up from ``cfg``."""
    try:
        cls = CONTRACT_MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown contract model {name!r}; expected one of {sorted(CONTRACT_MODELS)}"
        ) from None
    return cls.from_config(cfg)
