"""How many threads the engine's libraries may start, and none of them busy-waiting.

LightGBM and scikit-learn run on OpenMP, numpy on a BLAS: each starts a thread per core by
default, and OpenMP threads spin while they wait. Beside one other busy process on a 2-core
machine a 4,000-row LightGBM fit took 11-27 s instead of 0.4 s. So a run

- asks for passive waiting (``OMP_WAIT_POLICY=PASSIVE``) before any OpenMP runtime loads
  (:func:`quiet_openmp`, called by the command line and the test suite's conftest), and
- keeps every pool to ``[engine] threads`` (default: the cores this process may use) while it
  runs (:func:`thread_budget`): threadpoolctl limits OpenMP and BLAS, and LightGBM is given
  the count explicitly (:func:`thread_count`).

Polars sizes its pool once, when it is imported, from the cores the process may use (or
``POLARS_MAX_THREADS``); it does not spin, so it needs no more than that.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_budget: int | None = None


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, so ``taskset`` and cgroups count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def quiet_openmp() -> None:
    """Ask OpenMP runtimes loaded from now on to sleep, not spin, while they wait.

    Takes effect only for a runtime not yet loaded (it reads its environment once), so call
    it before LightGBM or scikit-learn is imported; a value the user set is kept.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def thread_count() -> int:
    """Threads a library call of the engine may use now: the budget of the innermost
    :func:`thread_budget`, else the cores available."""
    return _budget if _budget is not None else available_cores()


@contextlib.contextmanager
def thread_budget(threads: int | None = None) -> Iterator[int]:
    """Keep OpenMP, BLAS and LightGBM to ``threads`` (default: the cores available) inside.

    Never more than the cores available: more busy threads than cores only wait on each
    other.

    Yields
    ------
    int
        The thread count in force.
    """
    # loaded first, so that the limits reach their OpenMP runtimes too
    import lightgbm  # noqa: F401
    import sklearn  # noqa: F401
    from threadpoolctl import threadpool_limits

    global _budget
    n = min(threads or available_cores(), available_cores())
    previous = _budget
    _budget = n
    try:
        with threadpool_limits(limits=n):
            yield n
    finally:
        _budget = previous
