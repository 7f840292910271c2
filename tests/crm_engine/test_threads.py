"""The thread budget: every pool kept to ``[engine] threads``, never above the cores."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError
from threadpoolctl import threadpool_info

from churn.model import lgbm_params
from crm_engine.config import EngineConfig
from crm_engine.threads import available_cores, thread_budget, thread_count


def _pool_sizes() -> set[int]:
    return {int(info["num_threads"]) for info in threadpool_info()}


def test_budget_limits_openmp_blas_and_lightgbm_and_is_restored() -> None:
    before = thread_count()
    with thread_budget(1) as n:
        assert n == 1 == thread_count()
        assert _pool_sizes() == {1}  # both OpenMP runtimes and both BLAS
        assert lgbm_params({}, seed=0)["n_jobs"] == 1
    assert thread_count() == before
    assert lgbm_params({}, seed=0)["n_jobs"] == before


def test_never_more_threads_than_cores() -> None:
    with thread_budget(available_cores() + 7) as n:
        assert n == available_cores() == thread_count()
    with thread_budget(None) as n:
        assert n == available_cores()


def test_openmp_waits_passively_in_the_test_suite_and_the_cli() -> None:
    # set by the conftest (and by crm_engine.cli.main) before LightGBM loaded
    assert os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"


def test_engine_threads_is_validated() -> None:
    assert EngineConfig().threads is None
    assert EngineConfig(threads=2).threads == 2
    with pytest.raises(ValidationError, match="threads"):
        EngineConfig(threads=0)
