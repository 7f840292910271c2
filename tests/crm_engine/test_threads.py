"""The thread budget: every pool kept to ``[engine] threads``, never above the cores."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError
from threadpoolctl import threadpool_info

from churn.model import lgbm_params
from crm_engine.config import EngineConfig
from crm_engine.threads import (
    QUIET_THREADS,
    available_cores,
    serial_blas,
    thread_budget,
    thread_count,
)


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


def test_serial_blas_keeps_blas_and_openmp_to_one_thread_and_restores_them() -> None:
    with thread_budget() as n:
        before = _pool_sizes()
        assert before == {n}
        with serial_blas():
            assert _pool_sizes() == {1}
            assert thread_count() == n  # LightGBM is given its own count
        assert _pool_sizes() == before


def test_never_more_threads_than_cores() -> None:
    with thread_budget(available_cores() + 7) as n:
        assert n == available_cores() == thread_count()
    with thread_budget(None) as n:
        assert n == available_cores()


def test_openmp_and_openblas_wait_quietly_once_crm_engine_is_imported() -> None:
    # A fresh interpreter: importing crm_engine sets both before numpy has loaded (OpenBLAS
    # reads its setting when numpy loads it), and keeps what the user set.
    probe = (
        "import os, sys; import crm_engine; "
        "print(os.environ['OMP_WAIT_POLICY'], os.environ['OPENBLAS_THREAD_TIMEOUT'], "
        "'numpy' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in QUIET_THREADS}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["PASSIVE", "4", "True"], out.stderr
    # -X importtime lists each module as its import completes: ours before numpy starts
    timing = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import crm_engine"],
        env=env,
        capture_output=True,
        text=True,
    ).stderr.splitlines()
    names = [line.rsplit("|", 1)[-1].strip() for line in timing]
    assert names.index("crm_engine.threads") < names.index("numpy")
    mine = env | {"OPENBLAS_THREAD_TIMEOUT": "10"}
    out = subprocess.run([sys.executable, "-c", probe], env=mine, capture_output=True, text=True)
    assert out.stdout.split()[1] == "10"
    assert os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"  # and in this test session


def test_engine_threads_is_validated() -> None:
    assert EngineConfig().threads is None
    assert EngineConfig(threads=2).threads == 2
    with pytest.raises(ValidationError, match="threads"):
        EngineConfig(threads=0)
