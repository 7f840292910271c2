"""Config: defaults, TOML files, overrides and errors that name the key path."""

import tomllib
from pathlib import Path

import pytest

from crm_engine.config import ConfigError, LightGBMConfig, config_to_toml, load_config


def test_defaults_are_valid() -> None:
    cfg = load_config()
    assert cfg.valuation.model == "bgnbd"
    assert cfg.segmentation.k == "auto"


def test_file_and_overrides(tmp_path: Path) -> None:
    p = tmp_path / "pipeline.toml"
    p.write_text('[data]\ndir = "x"\n[churn]\nhorizon_days = 60\n')
    cfg = load_config(p, {"churn.horizon_days": 30})
    assert cfg.data.dir == tmp_path / "x"  # relative to the config file's folder
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
    cfg.data.dir = cfg.data.dir.resolve()  # the rendered file names the directory a run uses
    assert load_config(p) == cfg


def test_example_config_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "pipeline.toml"
    cfg = load_config(example)
    assert cfg.churn.lightgbm.num_leaves == 31
    assert cfg.valuation.margin == 0.30


def test_lightgbm_sections_have_each_models_defaults() -> None:
    cfg = load_config()
    assert isinstance(cfg.churn.lightgbm, LightGBMConfig)
    assert isinstance(cfg.loyalty.lightgbm, LightGBMConfig)
    assert cfg.churn.lightgbm.model_dump() == {
        "learning_rate": 0.03,
        "num_leaves": 7,
        "max_depth": 3,
        "min_child_samples": 300,
        "n_estimators": 1500,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.5,
        "reg_lambda": 0.0,
    }
    assert cfg.loyalty.lightgbm.model_dump() == {
        "learning_rate": 0.1,
        "num_leaves": 15,
        "max_depth": 5,
        "min_child_samples": 50,
        "n_estimators": 150,
        "subsample": 1.0,
        "subsample_freq": 0,
        "colsample_bytree": 1.0,
        "reg_lambda": 100.0,
    }
    # all trees grown on six snapshots' survey answers: see tests/pipelines/test_drift.py
    assert cfg.loyalty.early_stopping_rounds is None and cfg.loyalty.training_snapshots == 6


def test_partial_lightgbm_table_keeps_the_sections_other_defaults(tmp_path: Path) -> None:
    p = tmp_path / "pipeline.toml"
    p.write_text("[churn.lightgbm]\nlearning_rate = 0.1\nreg_lambda = 2\n")
    cfg = load_config(p, {"loyalty.lightgbm.num_leaves": 31})
    defaults = load_config()
    assert cfg.churn.lightgbm.learning_rate == 0.1 and cfg.churn.lightgbm.reg_lambda == 2.0
    reverted = cfg.churn.lightgbm.model_copy(update={"learning_rate": 0.03, "reg_lambda": 0.0})
    assert reverted == defaults.churn.lightgbm  # every other key kept churn's default
    assert cfg.loyalty.lightgbm.num_leaves == 31
    assert cfg.loyalty.lightgbm.min_child_samples == 50  # loyalty's, not churn's or LightGBM's


def test_lightgbm_unknown_key_and_bounds_name_the_path(tmp_path: Path) -> None:
    p = tmp_path / "pipeline.toml"
    p.write_text("[churn.lightgbm]\nnum_leafs = 7\n")
    with pytest.raises(
        ConfigError, match=r"churn\.lightgbm\.num_leafs: unknown key \(allowed: .*num_leaves"
    ):
        load_config(p)
    p.write_text("[loyalty.lightgbm]\nmax_depth = 12\n")
    with pytest.raises(ConfigError, match=r"loyalty\.lightgbm\.max_depth: .*8 \(got 12\)"):
        load_config(p)
    for key, bad in (("learning_rate", 0), ("subsample", 1.5), ("reg_lambda", -1)):
        with pytest.raises(ConfigError, match=rf"churn\.lightgbm\.{key}: "):
            load_config(None, {f"churn.lightgbm.{key}": bad})
    # the free-form dict it replaces is an unknown key now, pointing at the new section
    p.write_text("[churn.lgbm_params]\nnum_leaves = 31\n")
    with pytest.raises(ConfigError, match=r"churn\.lgbm_params: unknown key .*lightgbm"):
        load_config(p)


def test_resolved_toml_renders_lightgbm_tables_and_round_trips(tmp_path: Path) -> None:
    cfg = load_config(None, {"churn.lightgbm.num_leaves": 15, "loyalty.lightgbm.reg_lambda": 1.5})
    text = config_to_toml(cfg)
    assert "[churn.lightgbm]" in text and "[loyalty.lightgbm]" in text
    assert "lgbm_params" not in text
    tree = tomllib.loads(text)
    assert tree["churn"]["lightgbm"]["num_leaves"] == 15
    assert tree["loyalty"]["lightgbm"] == cfg.loyalty.lightgbm.model_dump()
    p = tmp_path / "resolved.toml"
    p.write_text(text)
    cfg.data.dir = cfg.data.dir.resolve()  # the rendered file names the directory a run uses
    assert load_config(p) == cfg
