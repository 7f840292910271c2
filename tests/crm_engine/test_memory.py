"""Freed memory goes back to the system: a run's RSS follows what it holds."""

from __future__ import annotations

import os
import subprocess
import sys

from crm_engine.memory import JEMALLOC_CONF

CHILD = """
import os, time
import crm_engine
import polars as pl
import psutil

rss = lambda: psutil.Process().memory_info().rss
base = rss()
frame = pl.DataFrame({"a": pl.int_range(0, 40_000_000, eager=True)}).with_columns(
    b=pl.col("a") * 2
)
held = rss() - base
del frame
deadline = time.monotonic() + 5.0
while rss() - base > 0.25 * held and time.monotonic() < deadline:
    pl.DataFrame({"x": [1]}).sum()  # allocator activity, as a run has
    time.sleep(0.05)
print(held, rss() - base, os.environ["_RJEM_MALLOC_CONF"])
"""


def _child() -> tuple[int, int, str]:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, env=env
    )
    held, left, conf = out.stdout.split()
    return int(held), int(left), conf


def test_importing_the_engine_returns_freed_polars_memory() -> None:
    """Polars configures its jemalloc to keep freed pages resident (``MADV_FREE``) until the
    kernel runs short; importing ``crm_engine`` before Polars loads makes it return them: our
    setting comes last in the one Polars hands to its allocator, so it wins."""
    held, left, conf = _child()
    assert conf.split(",")[-1] == JEMALLOC_CONF == "muzzy_decay_ms:0", conf
    assert held > 500e6  # two 40M-row int64 columns were resident
    assert left < 0.25 * held, (held, left)


RELEASE_CHILD = """
import crm_engine
import numpy as np
import psutil
from crm_engine.memory import release_freed

rss = lambda: psutil.Process().memory_info().rss
base = rss()
cycle = {"data": np.ones(40_000_000)}  # 320 MB reachable only through a cycle
cycle["self"] = cycle
held = rss() - base
del cycle
before = rss() - base
release_freed()
print(held, before, rss() - base)
"""


def test_releasing_between_stages_frees_what_only_a_cycle_held() -> None:
    """An array held by a reference cycle (as LightGBM's and matplotlib's objects hold theirs)
    stays resident after its last name is gone, until the cycle collector runs: between two
    stages :func:`crm_engine.memory.release_freed` runs it and the memory goes back."""
    out = subprocess.run(
        [sys.executable, "-c", RELEASE_CHILD], capture_output=True, text=True, check=True
    )
    held, before, after = (int(x) for x in out.stdout.split())
    assert held > 300e6 and before > 0.9 * held, (held, before)
    assert after < 0.1 * held, (held, after)
