"""The command line: every command documents itself; config errors are one line, exit 1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from crm_engine.cli import app

runner = CliRunner()


def _command_paths() -> list[list[str]]:
    click_app = typer.main.get_command(app)
    paths: list[list[str]] = []
    for name, cmd in click_app.commands.items():  # type: ignore[attr-defined]
        paths.append([name])
        for sub in getattr(cmd, "commands", {}):
            paths.append([name, sub])
    return paths


def test_expected_commands_exist() -> None:
    names = {" ".join(p) for p in _command_paths()}
    assert {
        "config",
        "validate",
        "generate",
        "features",
        "segment",
        "value",
        "churn train",
        "churn score",
        "run",
        "demo",
        "backtest",
    } <= names


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p))
def test_help_of_every_command(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_config_show_prints_resolved_toml() -> None:
    result = runner.invoke(app, ["config", "--show"])
    assert result.exit_code == 0
    assert "[valuation]" in result.output and 'model = "bgnbd"' in result.output


def test_config_error_names_key_and_exits_1(tmp_path: Path) -> None:
    p = tmp_path / "pipeline.toml"
    p.write_text("[churn]\ncalibration = 'magic'\n")
    result = runner.invoke(app, ["config", str(p)])
    assert result.exit_code == 1
    assert "churn.calibration" in result.output and "isotonic" in result.output


def test_run_rejects_unknown_stage(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--data", str(tmp_path), "--stages", "magic"])
    assert result.exit_code != 0
    assert "magic" in result.output


def test_config_show_round_trips(tmp_path: Path) -> None:
    """``config --show > r.toml; config r.toml``: the printed TOML is the same config."""
    from crm_engine.config import load_config

    source = tmp_path / "in.toml"
    source.write_text('[churn]\nextra_features = ["' + "a_rather_long_column_name" * 6 + '"]\n')
    shown = runner.invoke(app, ["config", str(source)], terminal_width=60)
    assert shown.exit_code == 0, shown.output
    printed = tmp_path / "r.toml"
    printed.write_text(shown.output)
    expected = load_config(source)
    expected.data.dir = expected.data.dir.resolve()  # --show prints the directory a run uses
    assert load_config(printed) == expected


def test_relative_data_dir_is_beside_the_config_file(tmp_path: Path) -> None:
    from crm_engine.config import load_config

    (tmp_path / "jobs").mkdir()
    cfg_file = tmp_path / "jobs" / "pipeline.toml"
    cfg_file.write_text('[data]\ndir = "../data/2026-11"\n')
    assert load_config(cfg_file).data.dir == (tmp_path / "data" / "2026-11").resolve()
    # a CLI override stays relative to where the job is started
    assert load_config(cfg_file, {"data.dir": "here"}).data.dir == Path("here")


def test_version() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"crm-engine {version('crm-engine')}"


def test_stages_accepts_a_comma_separated_list(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--data", str(tmp_path), "--stages", "profile,magic"])
    assert result.exit_code != 0
    assert "unknown stages ['magic']" in result.output


@pytest.mark.parametrize("quiet", [False, True], ids=["display", "quiet"])
def test_run_on_a_missing_directory_is_one_error_line(tmp_path: Path, quiet: bool) -> None:
    """``run --data`` of a directory that is not there: one line on stderr, exit 1, and no
    progress table (not even its header) before it; nothing created."""
    args = ["run", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, *(["--quiet"] if quiet else [])])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: data directory ") and "does not exist" in lines[0]
    assert os.listdir(tmp_path) == []
