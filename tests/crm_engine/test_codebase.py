"""The codebase stays readable: no module a newcomer has to hold in their head at once."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("crm_engine", "features", "segmentation", "valuation", "churn", "pipelines")
MAX_LINES = 600
EXEMPT = ("crm_engine/generator/",)  # the simulator is one long story, told in order


def test_no_module_over_600_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    assert len(sizes) > 50  # the walk found the code
    long = {name: n for name, n in sizes.items() if n > MAX_LINES and not name.startswith(EXEMPT)}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
