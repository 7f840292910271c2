"""Give memory back to the system when it is freed, not when the kernel runs short.

Polars allocates through its own jemalloc. Polars configures it to keep freed pages for
half a second and then to release them lazily (``MADV_FREE``, "muzzy" pages): the kernel
takes those back only under memory pressure, and until then they count in the process's
resident set. A run frees and allocates gigabytes in quick succession (a profile built per
bucket, the cuts' training frames dropped before the fits), so its RSS, what a scheduler or
``bench_scale`` watches and kills on, kept every peak: at 1M customers the churn stage's peak
RSS was 3.25 GB with Polars' setting and 2.85 GB with freed pages returned at once
(``muzzy_decay_ms:0``, which Polars appends to its own setting).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys

JEMALLOC_CONF = "muzzy_decay_ms:0"
"""Freed pages are returned (``MADV_DONTNEED``) after Polars' half-second decay."""


def return_freed_memory() -> None:
    """Ask Polars' allocator to return freed pages to the system.

    Polars reads ``_RJEM_MALLOC_CONF`` once, when it is first imported: this takes effect
    only before that import. Importing this module calls it, and ``crm_engine`` imports it
    first. A value the user set is kept.
    """
    os.environ.setdefault("_RJEM_MALLOC_CONF", JEMALLOC_CONF)


return_freed_memory()


def release_freed(*, collect: bool = True) -> None:
    """Free what a finished step left unreachable and return the C allocator's free pages
    (``collect=False``: only return the pages, when what was dropped had no cycles; the
    collector walks every object, ~0.3 s in a test process full of them).

    Between two stages of a run: Python's cycle collector runs on object counts, not bytes, so
    a few cycles (LightGBM's and matplotlib's objects) kept their arrays alive into the next
    stage; glibc's ``malloc_trim`` returns the free pages inside its arenas, where numpy's and
    pandas' mid-sized arrays live. At 1M customers the two gave back 0.2-0.4 GB after the
    segmentation, valuation and churn stages, in ~20 ms. (Polars' jemalloc returns its own
    within half a second; see :data:`JEMALLOC_CONF`.)
    """
    if collect:
        gc.collect()
    if sys.platform.startswith("linux"):
        name = ctypes.util.find_library("c")
        if name:
            trim = getattr(ctypes.CDLL(name), "malloc_trim", None)  # glibc only (not musl)
            if trim is not None:
                trim(0)
