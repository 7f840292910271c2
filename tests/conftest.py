"""Shared fixtures: one small generated operator per test session (generation is deterministic)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from crm_engine.threads import available_cores, thread_budget  # quiets OpenMP and OpenBLAS

# Property tests check what a function returns, never how fast: Hypothesis' 200 ms deadline per
# example failed a profit test on a loaded machine (254 ms) with nothing wrong in the code.
settings.register_profile("crm-engine", deadline=None)
settings.load_profile("crm-engine")

E2E_CUSTOMERS = 2_500
E2E_SEED = 11


def pytest_itemcollected(item: pytest.Item) -> None:
    """One ``xdist_group`` per test file, and one for every Spark test.

    ``make test`` runs ``pytest -n 2 --dist loadgroup``: a file's tests stay on one worker in
    order, so its module fixtures (fitted models, pipeline runs) are built once, and the Spark
    tests share one worker and its one ``local[2]`` session. (Marked as each item is collected:
    xdist reads the groups in its own ``pytest_collection_modifyitems``.)
    """
    path = item.path.relative_to(Path(__file__).parent)
    group = "spark" if path.parts[0] == "spark" else path.as_posix()
    item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session", autouse=True)
def _thread_share() -> Iterator[int]:
    """Each xdist worker's share of the cores (``make test``: two workers, one thread each),
    so the workers' LightGBM, scikit-learn and BLAS pools never outnumber the cores."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    with thread_budget(max(1, available_cores() // workers)) as n:
        yield n


@pytest.fixture(scope="session")
def generated_operator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2,500-customer, 24-month synthetic operator (tables + ``_truth``); read-only."""
    from crm_engine.generator import generate

    out = tmp_path_factory.mktemp("operator") / "data"
    generate(out, customers=E2E_CUSTOMERS, months=24, seed=E2E_SEED)
    return out


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """The hand-built tiny dataset of ``tests.features._tiny`` as Parquet files in ``data/``."""
    from tests.features._tiny import tiny_frames

    d = tmp_path / "data"
    d.mkdir()
    for name, df in tiny_frames().items():
        df.write_parquet(d / f"{name}.parquet")
    return d
