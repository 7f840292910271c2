"""How many threads the engine's libraries may start, and none of them busy-waiting.

LightGBM and scikit-learn run on OpenMP, numpy on a BLAS: each starts a thread per core by
default, and both OpenMP's and OpenBLAS's threads spin while they wait. Beside one other busy
process on a 2-core machine a 4,000-row LightGBM fit took 11-27 s instead of 0.4 s, and the
contagion's logistic regression (OpenBLAS) 0.49 s instead of 0.29. So a run

- asks for passive waiting (``OMP_WAIT_POLICY=PASSIVE``, and OpenBLAS's shortest spin,
  ``OPENBLAS_THREAD_TIMEOUT=4``) before any OpenMP runtime or BLAS loads
  (:func:`quiet_threads`, called when ``crm_engine`` is imported), and
- keeps every pool to ``[engine] threads`` (default: the cores this process may use) while it
  runs (:func:`thread_budget`): threadpoolctl limits OpenMP and BLAS, and LightGBM is given
  the count explicitly (:func:`thread_count`).

Polars sizes its pool once, when it is imported, from the cores the process may use (or
``POLARS_MAX_THREADS``); it does not spin, so it needs no more than that.

The regressions solved by many small BLAS calls (the logistic learner's Newton path, the
contagion and value hazards) run on one thread (:func:`serial_blas`): every call is a fork and a
join, and beside a busy process each join waits for a time slice. With one CPU-bound process
beside it on 2 cores, the 1M operator's contagion fit took 10.5 s on two BLAS threads and 2.3 s
on one; the logistic learner's 200,000-row path 25 s against 10 s.
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


QUIET_THREADS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}
"""Waiting OpenMP threads sleep; waiting OpenBLAS threads spin 2**4 cycles (default 2**28)."""


def quiet_threads() -> None:
    """Ask OpenMP runtimes and OpenBLAS loaded from now on to sleep, not spin, while they wait.

    Takes effect only for a library not yet loaded (each reads its environment once), so
    importing this module calls it, and ``crm_engine`` imports it before numpy, scikit-learn
    or LightGBM; a value the user set is kept.
    """
    for name, value in QUIET_THREADS.items():
        os.environ.setdefault(name, value)


quiet_threads()


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


@contextlib.contextmanager
def serial_blas() -> Iterator[None]:
    """Keep BLAS and OpenMP to one thread inside (restored after): for fits made of many small
    BLAS calls, which a second thread barely speeds up on a quiet machine and slows down
    several times on a busy one (see the module docstring). LightGBM, given its count
    explicitly (:func:`thread_count`), is not affected."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
