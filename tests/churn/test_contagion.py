"""Churn contagion against the generator's planted effect, point-in-time, and network value."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from churn.contagion import Contagion, contagion_panel, estimate_contagion, fit_contagion
from churn.network import EdgeList, network_values, with_network_value
from crm_engine.generator import generate
from crm_engine.generator.personas import ChurnEffects, WorldParams
from crm_engine.io import load_tables
from crm_engine.parts import FrameParts
from features import CustomerSample

AS_OF = dt.date(2025, 1, 1)
CUSTOMERS = 20_000


def _world(root: Path, seed: int, contagion: float | None = None) -> Path:
    out = root / "data"
    params = None if contagion is None else WorldParams(churn=ChurnEffects(contagion=contagion))
    generate(out, customers=CUSTOMERS, months=24, seed=seed, params=params)
    return out


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _world(tmp_path_factory.mktemp("contagion"), seed=3)


@pytest.fixture(scope="module")
def none_planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _world(tmp_path_factory.mktemp("no_contagion"), seed=3, contagion=0.0)


def _planted_effect(world: Path) -> float:
    params = json.loads((world / "_truth" / "params.json").read_text())
    return float(params["churn_effects"]["contagion"])


def test_recovers_the_planted_contagion(planted: Path) -> None:
    found = estimate_contagion(load_tables(planted), AS_OF)
    truth = _planted_effect(planted)
    assert truth == 2.5
    # Within 25% (measured -17% at this size, -20% at 100k: a quarter of the contacts the
    # generator counts have not been seen calling yet, which attenuates the share).
    assert abs(found.coefficient - truth) <= 0.25 * truth, found
    assert found.significant and found.effect == found.coefficient
    assert found.rows > 10 * CUSTOMERS // 2 and found.events > 1_000 and found.exposed > 1_000


def test_case_control_sample_keeps_the_estimate(planted: Path) -> None:
    """Every churned month and a sample of the others, 60,000 rows of 161,000: the slopes stay
    (only the intercept of a logistic regression moves under sampling on the outcome), the
    standard error grows a little, and the counts still describe the whole panel."""
    panel = contagion_panel(load_tables(planted), AS_OF)
    whole = fit_contagion(panel, months=12, contagion_days=90, max_rows=None)
    assert whole == fit_contagion(panel, months=12, contagion_days=90)  # under the default
    part = fit_contagion(panel, months=12, contagion_days=90, max_rows=60_000)
    assert whole.fitted_rows == whole.rows == part.rows == panel.height > 150_000
    assert part.fitted_rows == 60_000
    assert (part.events, part.exposed) == (whole.events, whole.exposed)
    assert abs(part.coefficient - whole.coefficient) < whole.std_error, (part, whole)
    assert 1.0 < part.std_error / whole.std_error < 1.3, (part, whole)
    for name, (coefficient, _) in whole.controls.items():
        assert abs(part.controls[name][0] - coefficient) < 2 * whole.controls[name][1], name
    again = fit_contagion(panel, months=12, contagion_days=90, max_rows=60_000)
    assert again == part  # seeded


def test_recovers_the_planted_contract_effects(planted: Path) -> None:
    """The churn hazard rises in the month a postpaid customer's term ends and the next, and
    falls inside the term: the controls recover both within 25% (measured -3% and +6%)."""
    found = estimate_contagion(load_tables(planted), AS_OF)
    planted_effects = json.loads((planted / "_truth" / "params.json").read_text())
    effects = planted_effects["churn_effects"]
    for name in ("contract_end", "in_contract"):
        coefficient, std_error = found.controls[name]
        assert abs(coefficient - effects[name]) <= 0.25 * abs(effects[name]), (name, found)
        assert 0 < std_error < 0.25 * abs(effects[name])


def test_without_contract_ends_the_contract_controls_are_left_out(planted: Path) -> None:
    """Data without ``contract_end_date`` (an older export) fits as before: the constant
    contract controls are left out instead of making the fit singular."""
    tables = load_tables(planted)
    tables["customers"] = tables["customers"].with_columns(
        pl.lit(None, pl.Date).alias("contract_end_date")
    )
    found = estimate_contagion(tables, AS_OF)
    assert "contract_end" not in found.controls and "in_contract" not in found.controls
    assert found.significant and math.isfinite(found.std_error)


def test_no_planted_contagion_gives_an_interval_around_zero(none_planted: Path) -> None:
    found = estimate_contagion(load_tables(none_planted), AS_OF)
    lo, hi = found.interval
    assert lo < 0.0 < hi, found
    assert not found.significant and found.effect == 0.0
    assert found.odds_factor(4) == 1.0


def test_panel_sees_nothing_from_as_of_on(planted: Path) -> None:
    """Every row dated on or after as_of changed (churn dates moved, calls and complaints
    added after it): the same panel."""
    tables = load_tables(planted)
    before = contagion_panel(tables, AS_OF, months=6)
    later = dict(tables)
    later["customers"] = tables["customers"].with_columns(
        pl.when(pl.col("churn_date") >= pl.lit(AS_OF))
        .then(pl.lit(AS_OF) + pl.duration(days=pl.col("customer_id") % 30))
        .when(pl.col("churn_date").is_null() & (pl.col("customer_id") % 7 == 0))
        .then(pl.lit(AS_OF))
        .otherwise(pl.col("churn_date"))
        .alias("churn_date")
    )
    calls = tables["calls"]
    later["calls"] = pl.concat(
        [calls, calls.head(5_000).with_columns(pl.lit(AS_OF).alias("month"))]
    )
    # an open complaint closed on or after as_of is still open as far as as_of can tell
    interactions = tables["interactions"]
    closed_at = interactions.collect_schema()["closed_at"]
    interactions = interactions.with_columns(
        pl.when(pl.col("closed_at").is_null() & (pl.col("customer_id") % 2 == 0))
        .then(pl.lit(dt.datetime(2025, 2, 1)).cast(closed_at))
        .otherwise(pl.col("closed_at"))
        .alias("closed_at")
    )
    later["interactions"] = pl.concat(
        [
            interactions,
            interactions.head(2_000).with_columns(
                pl.lit(dt.datetime(2025, 1, 1))
                .cast(interactions.collect_schema()["opened_at"])
                .alias("opened_at"),
                pl.lit("complaint").alias("kind"),
            ),
        ]
    )
    assert_frame_equal(contagion_panel(later, AS_OF, months=6), before)


def test_panel_counts_contacts_and_months_at_risk(planted: Path) -> None:
    panel = contagion_panel(load_tables(planted), AS_OF, months=6)
    assert panel.get_column("month").unique().sort().to_list() == [
        dt.date(2024, m, 1) for m in range(7, 13)
    ]
    assert panel.select(pl.struct("customer_id", "month").is_unique().all()).item()
    churned = panel.filter(pl.col("churned") == 1)
    # a customer leaves once: no months at risk after the month they left
    last = panel.group_by("customer_id").agg(pl.col("month").max().alias("last"))
    assert (
        churned.join(last, on="customer_id")
        .select((pl.col("month") == pl.col("last")).all())
        .item()
    )
    assert panel.select(pl.col("exposure").is_between(0.0, 1.0).all()).item()
    assert panel.filter(pl.col("n_contacts") == 0).get_column("exposure").max() in (None, 0.0)


def test_sample_bounds_the_panel(planted: Path) -> None:
    tables = load_tables(planted)
    whole = contagion_panel(tables, AS_OF, months=3)
    part = contagion_panel(tables, AS_OF, months=3, sample=CustomerSample(0.25))
    assert 0.2 * whole.height < part.height < 0.3 * whole.height
    # a sampled customer's row is the same as in the whole panel (contacts are everyone)
    assert_frame_equal(
        part,
        whole.join(part.select("customer_id", "month"), on=["customer_id", "month"])
        .sort("customer_id", "month")
        .select(part.columns),
    )


def test_nothing_to_estimate_from_is_an_error() -> None:
    panel = pl.DataFrame(
        {
            "churned": [0, 0, 0],
            "exposure": [0.0, 0.5, 0.0],
            "prepaid": [1.0, 0.0, 1.0],
            "short_tenure": [0.0, 0.0, 1.0],
            "recent_complaints": [0.0, 1.0, 0.0],
            "open_unresolved": [0.0, 0.0, 0.0],
            "log_contacts": [0.7, 1.1, 0.7],
            "place": ["a/urban"] * 3,
            "month": [dt.date(2024, 1, 1)] * 3,
        }
    )
    with pytest.raises(ValueError, match="3 customer months, 0 churns, 1 exposed"):
        fit_contagion(panel, months=1, contagion_days=90)


def _contagion(coefficient: float, std_error: float = 0.1) -> Contagion:
    return Contagion(coefficient, std_error, 1_000, 50, 100, 12, 90)


def _undirected(pairs: list[tuple[int, int]]) -> pl.LazyFrame:
    """An edge list as ``undirected_edges`` gives it: each pair in both directions."""
    return pl.DataFrame(
        pairs + [(b, a) for a, b in pairs],
        schema={"customer_id": pl.Int64, "contact_id": pl.Int64},
        orient="row",
    ).lazy()


def test_network_value_by_hand() -> None:
    """Customer 1 calls 2 and 3; 2 also calls 3. If 1 leaves, 2's and 3's shares rise by one
    over their two contacts each, for the 90-day window."""
    edges = _undirected([(1, 2), (1, 3), (2, 3)])
    scored = pl.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "churn_probability": [0.2, 0.1, 0.3, 0.5],
            "clv": [100.0, 200.0, 50.0, 80.0],
        }
    )
    beta, horizon = 2.0, 90
    got = dict(network_values(edges, scored, _contagion(beta), horizon).iter_rows())
    window = 90 / (365.25 / 12)

    def extra(p: float, contacts: int) -> float:
        h = 1 - (1 - p) ** ((365.25 / 12) / horizon)
        lifted = 1 / (1 + math.exp(-(math.log(h / (1 - h)) + beta / contacts)))
        return (1 - h) ** window - (1 - lifted) ** window

    assert got[1] == pytest.approx(extra(0.1, 2) * 200 + extra(0.3, 2) * 50, rel=1e-12)
    assert got[2] == pytest.approx(extra(0.2, 2) * 100 + extra(0.3, 2) * 50, rel=1e-12)
    assert got[4] == 0.0  # no contacts
    # a stronger effect costs more; no evidence of one costs nothing
    stronger = dict(network_values(edges, scored, _contagion(4.0), horizon).iter_rows())
    assert stronger[1] > got[1] > 0
    none = network_values(edges, scored, _contagion(0.1, std_error=0.2), horizon)
    assert none.get_column("network_value").to_list() == [0.0] * 4


def test_lost_customers_take_nobody_and_risk_nothing() -> None:
    edges = _undirected([(1, 2), (2, 3)])
    scores = pl.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "churn_probability": [0.2, 0.4, 0.3],
            "churn_risk_band": ["high", "lost", "low"],
            "value_at_risk": [20.0, 0.0, 15.0],
        }
    )
    clv = pl.DataFrame({"customer_id": [1, 2, 3], "clv": [100.0, 300.0, 50.0]})
    graph = EdgeList(edges)
    out = with_network_value(
        FrameParts(scores), FrameParts(clv), FrameParts(graph.degrees()), graph, _contagion(2.0), 90
    )
    out = out.plan().collect()
    assert out.columns == [*scores.columns, "network_value", "value_at_risk_network"]
    row = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    assert row[1]["network_value"] == 0.0  # their one contact (2) is already lost
    assert row[3]["network_value"] == 0.0
    assert row[2]["network_value"] > 0.0 and row[2]["value_at_risk_network"] == 0.0
    assert np.isclose(row[1]["value_at_risk_network"], 0.0)
