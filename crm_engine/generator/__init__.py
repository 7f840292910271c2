"""Synthetic mobile operator: the seven input tables plus the ground truth behind them."""

from crm_engine.generator.oracle import as_of_churn_probability
from crm_engine.generator.personas import PERSONAS, ChurnEffects, Persona, WorldParams
from crm_engine.generator.simulate import GenerationSummary, generate
from crm_engine.generator.truth import true_churn_probability
from crm_engine.generator.value import true_value

__all__ = [
    "PERSONAS",
    "ChurnEffects",
    "GenerationSummary",
    "Persona",
    "WorldParams",
    "as_of_churn_probability",
    "generate",
    "true_churn_probability",
    "true_value",
]
