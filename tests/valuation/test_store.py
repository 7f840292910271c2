"""The CLV model as JSON: rebuilt from its parameters, scores bit for bit, nothing else loads."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from crm_engine.config import ValuationConfig
from crm_engine.io import DataError
from valuation import PURCHASE_MODELS, btyd_statistics, fit_models, value_customers
from valuation.store import load_valuation_model, save_valuation_model


@pytest.mark.parametrize("model", sorted(PURCHASE_MODELS))
def test_round_trip_scores_exactly_the_same(
    model: str, profile: pl.DataFrame, tmp_path: Path
) -> None:
    cfg = ValuationConfig(model=model, horizon_days=180, margin=0.25)  # type: ignore[arg-type]
    models = fit_models(btyd_statistics(profile), cfg)
    path = save_valuation_model(models, cfg, tmp_path / "clv_model.json")
    again, cfg_again = load_valuation_model(path)
    assert cfg_again == cfg
    assert type(again.purchase) is type(models.purchase)
    assert again.purchase.params_ == models.purchase.params_
    assert again.spend.params_ == models.spend.params_
    assert again.purchase.to_dict() == models.purchase.to_dict()  # init and fitted values
    before, _ = value_customers(profile, cfg, models)
    after, _ = value_customers(profile, cfg_again, again)
    assert_frame_equal(after, before, check_exact=True)


@pytest.fixture(scope="module")
def saved(profile: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict:
    cfg = ValuationConfig()
    path = tmp_path_factory.mktemp("clv") / "clv_model.json"
    save_valuation_model(fit_models(btyd_statistics(profile), cfg), cfg, path)
    return json.loads(path.read_text())


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "clv_model.json"
    path.write_text(json.dumps(doc))
    return path


def _purchase(doc: dict) -> dict:
    """The stored purchase model of repeat buyers (the default pairs it with MBG/NBD)."""
    return doc["purchase"].get("repeat", doc["purchase"])


def test_a_purchase_model_outside_the_registry_is_refused(saved: dict, tmp_path: Path) -> None:
    assert saved["purchase"]["model"] == "frequency0_split"
    for where in ("top", "repeat", "frequency0"):
        doc = json.loads(json.dumps(saved))
        (doc["purchase"] if where == "top" else doc["purchase"][where])["model"] = "os.system"
        with pytest.raises(DataError, match=r"purchase model 'os\.system' is not one of"):
            load_valuation_model(_write(tmp_path, doc))


@pytest.mark.parametrize(
    ("part", "name", "value", "message"),
    [
        ("spend", "model", "bgnbd", "expected a 'gamma_gamma' model, got 'bgnbd'"),
        ("purchase", "fitted", {"params_": {"r": "__import__('os')"}}, "not a fitted number"),
        ("purchase", "fitted", {"params_": {"r": 1.0}}, "params_ should hold"),
        ("spend", "fitted", {"__class__": 1.0}, "not a fitted number"),
        ("purchase", "init", {"cmd": "rm -rf /"}, "unexpected keyword argument 'cmd'"),
    ],
)
def test_anything_but_fitted_numbers_is_refused(
    saved: dict, tmp_path: Path, part: str, name: str, value: object, message: str
) -> None:
    doc = json.loads(json.dumps(saved))
    (_purchase(doc) if part == "purchase" else doc[part])[name] = value
    with pytest.raises(DataError, match=message):
        load_valuation_model(_write(tmp_path, doc))


def test_another_format_or_not_json_is_refused(saved: dict, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"is not a crm\.clv/v1 CLV model"):
        load_valuation_model(_write(tmp_path, {**saved, "format": "pickle"}))
    path = tmp_path / "clv_model.json"
    path.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(DataError, match="is not a readable CLV model"):
        load_valuation_model(path)
