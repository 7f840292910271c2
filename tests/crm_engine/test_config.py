"""Config: defaults, TOML files, overrides and errors that name the key path."""

from pathlib import Path

import pytest

from crm_engine.config import ConfigError, config_to_toml, load_config


def test_defaults_are_valid() -> None:
    cfg = load_config()
    assert cfg.valuation.model == "bgnbd"
    assert cfg.segmentation.k == "auto"


def test_file_and_overrides(tmp_path: Path) -> None:
    p = tmp_path / "pipeline.toml"
    p.write_text('[data]\ndir = "x"\n[churn]\nhorizon_days = 60\n')
    cfg = load_config(p, {"churn.horizon_days": 30})
    assert cfg.data.dir == Path("x")
    assert cfg.churn.horizon_days == 30


def test_unknown_key_names_path_and_allowed(tmp_path: Path) -> None:
    p = tmp_path / "pipeline.toml"
    p.write_text("[valuation]\nmodle = 'auto'\n")
    with pytest.raises(ConfigError, match=r"valuation\.modle: unknown key \(allowed: .*model"):
        load_config(p)


def test_bad_value_names_allowed_values(tmp_path: Path) -> None:
    p = tmp_path / "pipeline.toml"
    p.write_text("[valuation]\nmodel = 'magic'\n")
    with pytest.raises(ConfigError, match=r"valuation\.model: .*'bgnbd'.*'magic'"):
        load_config(p)


def test_resolved_toml_round_trips(tmp_path: Path) -> None:
    cfg = load_config(None, {"segmentation.k": 5})
    p = tmp_path / "resolved.toml"
    p.write_text(config_to_toml(cfg))
    assert load_config(p) == cfg


def test_example_config_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "pipeline.toml"
    cfg = load_config(example)
    assert cfg.churn.lgbm_params["num_leaves"] == 31
    assert cfg.valuation.margin == 0.30
