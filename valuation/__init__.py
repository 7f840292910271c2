"""Customer lifetime value: BTYD purchase models, Gamma-Gamma spend, CLV, tiers and lifecycle."""

from __future__ import annotations

from crm_engine.lazy import lazy_names
from valuation.base import BTYD_COLUMNS, PurchaseModel, ValuationError, import_lifetimes
from valuation.bgnbd import BetaGeoModel, ModifiedBetaGeoModel, simulate_bgnbd
from valuation.clv import (
    customer_lifetime_value,
    discounted_clv,
    month_ends,
    monthly_discount_rate,
)
from valuation.gamma_gamma import GammaGammaModel
from valuation.lifecycle import STAGES, lifecycle_stage_expr, with_lifecycle_inputs
from valuation.optimize import compress
from valuation.pareto import ParetoNBDModel
from valuation.profit import profit_contribution_expr
from valuation.run import ValuationRun, run_valuation
from valuation.select import (
    AUTO_CANDIDATES,
    FREQUENCY0_MODEL,
    PURCHASE_MODELS,
    make_purchase_model,
    scoring_model,
    select_by_mae,
)
from valuation.split import FrequencyZeroSplit
from valuation.stage import (
    VALUES_SCHEMA,
    ValuationModels,
    btyd_frame,
    btyd_statistics,
    fit_models,
    score_arrays,
    value_customers,
)
from valuation.tiers import TIERS, assign_tiers, tier_cut_points

__getattr__ = lazy_names(
    "valuation", "valuation.pyfunc", ("ValuationPyfunc", "log_valuation_model")
)


__all__ = [
    "AUTO_CANDIDATES",
    "BTYD_COLUMNS",
    "FREQUENCY0_MODEL",
    "PURCHASE_MODELS",
    "STAGES",
    "TIERS",
    "VALUES_SCHEMA",
    "BetaGeoModel",
    "FrequencyZeroSplit",
    "GammaGammaModel",
    "ModifiedBetaGeoModel",
    "ParetoNBDModel",
    "PurchaseModel",
    "ValuationError",
    "ValuationModels",
    "ValuationPyfunc",
    "ValuationRun",
    "assign_tiers",
    "btyd_frame",
    "btyd_statistics",
    "compress",
    "customer_lifetime_value",
    "discounted_clv",
    "fit_models",
    "import_lifetimes",
    "lifecycle_stage_expr",
    "log_valuation_model",
    "make_purchase_model",
    "month_ends",
    "monthly_discount_rate",
    "profit_contribution_expr",
    "run_valuation",
    "score_arrays",
    "scoring_model",
    "select_by_mae",
    "simulate_bgnbd",
    "tier_cut_points",
    "value_customers",
    "with_lifecycle_inputs",
]
