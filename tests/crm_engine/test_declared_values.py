"""Tiers, lifecycle stages, risk bands, loyalty classes and spend levels are declared once.

The scores contract declares each label column's values (``ScoreColumn.values``); the stages and
the report derive theirs from it, and no other source file writes a list of them out. Age bands
come from the configured ``features.age_bands`` cut points.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import churn
import features
import segmentation
import valuation
from crm_engine.config import FeaturesConfig, age_band_labels
from crm_engine.contracts import SCORE_COLUMNS, score_values
from crm_engine.report import views

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("crm_engine", "features", "segmentation", "valuation", "churn", "pipelines")
"""Every non-test package (the generator included); ``benchmarks`` too."""
DECLARED = {c.name: frozenset(c.values) for c in SCORE_COLUMNS if c.values}
AGE_BANDS = frozenset(age_band_labels(FeaturesConfig().age_bands))


def _declarations(tree: ast.AST) -> set[int]:
    """Ids of the literals passed as ``values=`` to a ``ScoreColumn``: the declarations."""
    return {
        id(k.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ScoreColumn"
        for k in node.keywords
        if k.arg == "values"
    }


def _written_out(source: str) -> list[tuple[int, str]]:
    """(line, column) of each tuple, list or set of two or more strings in ``source`` that lists
    values of a declared column (or two age bands), other than the declaration itself."""
    tree = ast.parse(source)
    declared = _declarations(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):  # a map keyed by the values lists them too
            elts = [k for k in node.keys if k is not None]  # not the ``**`` of another map
        elif isinstance(node, ast.Tuple | ast.List | ast.Set) and id(node) not in declared:
            elts = list(node.elts)
        else:
            continue
        items = [e.value for e in elts if isinstance(e, ast.Constant)]
        if len(items) < 2 or len(items) != len(elts) or not all(isinstance(v, str) for v in items):
            continue
        values = frozenset(items)
        found += [(node.lineno, c) for c, allowed in DECLARED.items() if values <= allowed]
        if len(values & AGE_BANDS) >= 2:
            found.append((node.lineno, "age_band"))
    return found


def test_no_source_writes_out_a_second_list_of_declared_values() -> None:
    second = [
        f"{path.relative_to(ROOT)}:{line} lists {column} values"
        for package in (*SOURCES, "benchmarks")
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, column in _written_out(path.read_text(encoding="utf-8"))
    ]
    assert second == []


def test_the_contract_declares_each_label_column_once() -> None:
    source = (ROOT / "crm_engine" / "contracts.py").read_text(encoding="utf-8")
    assert len(_declarations(ast.parse(source))) == len(DECLARED) == 5


def test_the_scan_finds_a_second_list() -> None:
    source = (
        "TIERS = ('platinum', 'gold')\n"
        "BANDS = ['<25', '25-34']\n"
        "OPEN = ('a', 'gold')\n"
        "C = ScoreColumn('x', values=('high', 'low'))\n"
        "for band in {'high', 'lost'}: pass\n"
    )
    assert _written_out(source) == [
        (1, "value_tier"),
        (2, "age_band"),
        (5, "churn_risk_band"),
    ]


def test_the_scan_finds_a_map_keyed_by_declared_values() -> None:
    source = (
        "COLOURS = {'promoter': 'green', 'passive': 'grey', 'detractor': 'red'}\n"
        "TITLES = {'value_tier': 'Tier', 'region': 'Region'}\n"
        "AGES = {'<25': 1, '25-34': 2, **OTHER}\n"
    )
    assert _written_out(source) == [(1, "loyalty_class"), (3, "age_band")]


def test_the_stages_and_the_report_derive_their_values_from_the_contract() -> None:
    assert valuation.TIERS == tuple(reversed(score_values("value_tier")))
    assert valuation.STAGES == score_values("lifecycle_stage")
    assert (*reversed(churn.RISK_BANDS), churn.LOST_BAND) == score_values("churn_risk_band")
    assert churn.LOST_STAGE in score_values("lifecycle_stage")
    assert features.LOYALTY_CLASSES == score_values("loyalty_class")
    assert segmentation.SPEND_LEVELS == tuple(reversed(score_values("spend_level")))
    assert views.TIER_ORDER == score_values("value_tier")
    assert views.RISK_ORDER == score_values("churn_risk_band")
    assert views.STAGE_ORDER == score_values("lifecycle_stage")
    assert views.LOYALTY_ORDER == score_values("loyalty_class")


def test_the_contract_meaning_names_the_declared_values() -> None:
    tiers = next(c for c in SCORE_COLUMNS if c.name == "value_tier")
    assert tiers.meaning == "platinum / gold / silver / bronze by CLV"


def test_an_open_column_has_no_declared_values() -> None:
    with pytest.raises(ValueError, match="'region' is not a scores column with declared values"):
        score_values("region")


def test_the_report_orders_age_bands_by_the_configured_cut_points() -> None:
    assert views.dimension_orders([30, 60])["age_band"] == ("<30", "30-59", "60+", "unknown")
    assert views.dimension_orders()["age_band"][:-1] == tuple(age_band_labels([25, 35, 50, 65]))
    assert segmentation.AGE_BANDS == views.dimension_orders()["age_band"]
