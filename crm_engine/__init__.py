"""crm-engine: who the operator's customers are, what each is worth, who is about to leave."""

import crm_engine.memory  # first: sets Polars' allocator before it loads
import crm_engine.threads  # noqa: F401  (quiets OpenMP and OpenBLAS before numpy loads)

# isort: split
from crm_engine.config import ConfigError, PipelineConfig, load_config
from crm_engine.contracts import (
    INPUT_TABLES,
    INPUTS_CONTRACT,
    INPUTS_CONTRACT_VERSION,
    SCORES_CONTRACT,
    SCORES_CONTRACT_VERSION,
)
from crm_engine.io import DataError, load_tables

__version__ = "0.1.0"

__all__ = [
    "INPUTS_CONTRACT",
    "INPUTS_CONTRACT_VERSION",
    "INPUT_TABLES",
    "SCORES_CONTRACT",
    "SCORES_CONTRACT_VERSION",
    "ConfigError",
    "DataError",
    "PipelineConfig",
    "__version__",
    "load_config",
    "load_tables",
]
