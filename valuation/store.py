"""The CLV model as data: one JSON file of the fitted parameters and the valuation config.

Loading rebuilds the models from their parameters (:meth:`ValueEstimator.from_dict`); the
purchase and contract models' classes come from the fixed registries
:data:`valuation.select.PURCHASE_MODELS` and :data:`~valuation.select.CONTRACT_MODELS`, never
from a name the file gives as a module path.
"""

from __future__ import annotations

import json
from pathlib import Path

from crm_engine.config import ValuationConfig
from crm_engine.io import DataError
from valuation.base import PurchaseModel
from valuation.contract import ContractModel, SBGModel
from valuation.gamma_gamma import GammaGammaModel
from valuation.select import CONTRACT_MODELS, PURCHASE_MODELS
from valuation.split import SPLIT_MODEL, FrequencyZeroSplit
from valuation.stage import ValuationModels

__all__ = ["FORMAT", "load_valuation_model", "save_valuation_model"]

FORMAT = "crm.clv/v1"


def save_valuation_model(models: ValuationModels, cfg: ValuationConfig, path: Path) -> Path:
    """Write the fitted purchase and spend models and ``cfg`` to ``path`` as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": FORMAT,
        "purchase": models.purchase.to_dict(),
        "spend": models.spend.to_dict(),
        "retention": None if models.retention is None else models.retention.to_dict(),
        "config": cfg.model_dump(mode="json"),
    }
    # Floats are written with repr: they read back bit for bit.
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


def load_valuation_model(path: Path) -> tuple[ValuationModels, ValuationConfig]:
    """The models and config written by :func:`save_valuation_model`.

    Raises
    ------
    DataError
        When the file is missing, is not JSON of this format, names a purchase model outside
        :data:`~valuation.select.PURCHASE_MODELS`, or holds anything but fitted numbers.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"CLV model not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path} is not a readable CLV model: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise DataError(f"{path} is not a {FORMAT} CLV model (got {got!r})")
    purchase = doc.get("purchase") if isinstance(doc.get("purchase"), dict) else {}
    try:
        if purchase.get("model") == SPLIT_MODEL:
            purchase_model: PurchaseModel = FrequencyZeroSplit.from_fitted(
                _registered(purchase.get("repeat"), path),
                _registered(purchase.get("frequency0"), path),
            )
        else:
            purchase_model = _registered(purchase, path)
        retention = doc.get("retention")
        models = ValuationModels(
            purchase_model,
            GammaGammaModel.from_dict(doc.get("spend")),
            None if retention is None else _contract(retention, path),
        )
        cfg = ValuationConfig.model_validate(doc.get("config"))
    except ValueError as e:
        raise DataError(f"{path} is not a usable CLV model: {str(e).splitlines()[0]}") from None
    return models, cfg


def _registered(d: object, path: Path) -> PurchaseModel:
    """A purchase model of :data:`~valuation.select.PURCHASE_MODELS` rebuilt from its data."""
    name = d.get("model") if isinstance(d, dict) else None
    if name not in PURCHASE_MODELS:
        raise DataError(
            f"{path}: purchase model {name!r} is not one of {sorted(PURCHASE_MODELS)}: not loaded"
        )
    return PURCHASE_MODELS[name].from_dict(d)


def _contract(d: object, path: Path) -> ContractModel:
    """A contract model of :data:`~valuation.select.CONTRACT_MODELS` rebuilt from its data (or
    the sBG as stored before it was an estimator: five plain numbers)."""
    if isinstance(d, dict) and "model" not in d:
        return SBGModel.from_legacy(d)
    name = d.get("model") if isinstance(d, dict) else None
    if name not in CONTRACT_MODELS:
        raise DataError(
            f"{path}: contract model {name!r} is not one of {sorted(CONTRACT_MODELS)}: not loaded"
        )
    return CONTRACT_MODELS[name].from_dict(d)
