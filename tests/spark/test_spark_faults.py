"""Faults of the Spark backend: no PySpark, no Java, a task that fails mid-run.

Each is one line on stderr and exit code 1, and the output directory is as it was: nothing
written when the backend cannot start, the previous committed run byte-identical (sha256 of
every file) when a Spark task fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crm_engine.cli import app
from crm_engine.commit import FAULT_ENV
from crm_engine.io import file_sha256
from pipelines.spark.profile import FAULT_POINT, failure_cause
from pipelines.spark.session import INSTALL_HINT
from tests.spark.conftest import AS_OF, BUCKETS, REPO

CLI = [sys.executable, "-c", "from crm_engine.cli import main; main()"]


def _run_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run", "--data", str(data), "--out", str(out), "--as-of", AS_OF, "--quiet",
        "--no-tracking", "--stages", "profile", *extra,
    ]  # fmt: skip


def _child(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``crm-engine`` of this checkout in a child process with ``env`` on top of ours."""
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run(
        [*CLI, *args], env=full, capture_output=True, text=True, timeout=120, check=False
    )


def _digest(root: Path) -> dict[str, str]:
    root = root.resolve()
    return {
        str(p.relative_to(root)): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()
    }


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_without_pyspark_the_run_says_how_to_install_it(
    generated_operator: Path, tmp_path: Path
) -> None:
    shadow = tmp_path / "shadow" / "pyspark"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named pyspark')\n")
    out = tmp_path / "out"
    result = _child(
        _run_args(generated_operator, out, "--backend", "spark"),
        {"PYTHONPATH": os.pathsep.join([str(shadow.parent), str(REPO)])},
    )
    assert result.returncode == 1, result.stderr
    lines = _error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert INSTALL_HINT in lines[0] and "pip install 'crm-engine[spark]'" in lines[0]
    assert not out.exists()


def test_without_java_the_run_names_what_is_missing(
    generated_operator: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    env = {"JAVA_HOME": "/nonexistent", "PATH": str(Path(sys.executable).parent)}
    result = _child(_run_args(generated_operator, out, "--backend", "spark"), env)
    assert result.returncode == 1, result.stderr
    lines = _error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Java" in lines[0] and "JAVA_HOME=/nonexistent" in lines[0]
    assert not out.exists()


def test_the_local_backend_never_imports_pyspark(generated_operator: Path) -> None:
    code = (
        "import sys, datetime as dt\n"
        "from crm_engine.io import load_tables\n"
        "from pipelines.runner import local_profile\n"
        "import pipelines.stages, crm_engine.cli\n"
        "from crm_engine.config import FeaturesConfig\n"
        f"t = load_tables({str(generated_operator)!r})\n"
        "local_profile(t, dt.date(2024, 10, 1), FeaturesConfig())\n"
        "assert not [m for m in sys.modules if m.startswith('pyspark')], 'pyspark imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_a_failing_spark_task_leaves_the_previous_output_untouched(
    spark: object, generated_operator: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    first = runner.invoke(app, _run_args(generated_operator, out))
    assert first.exit_code == 0, first.output
    before = _digest(out)
    assert "scores.parquet" in before

    config = tmp_path / "pipeline.toml"
    config.write_text(f'[engine]\nbackend = "spark"\n\n[engine.spark]\nbuckets = {BUCKETS}\n')
    args = [*_run_args(generated_operator, out), str(config)]
    monkeypatch.setenv(FAULT_ENV, FAULT_POINT)
    failed = runner.invoke(app, args)
    assert failed.exit_code == 1, failed.output
    errors = [line for line in failed.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, failed.output
    assert "stage profile failed" in errors[0] and "injected fault" in errors[0], errors[0]
    assert f"{FAULT_ENV}={FAULT_POINT}" in errors[0]
    assert _digest(out) == before
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]

    # the session outlives the failed run (a session the run did not start is not stopped):
    # the next run succeeds on it and commits
    monkeypatch.delenv(FAULT_ENV)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert _digest(out) != before


def test_a_crashed_worker_is_named_in_one_line() -> None:
    """What Spark raises on the driver when a task's Python worker died on its last try (the
    text of a ``local[2]`` run whose worker was killed, trimmed): the crash and the tries,
    not the Py4J call that carried it."""
    text = (
        "An error occurred while calling o271.parquet.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 1 in stage "
        "10.0 failed 4 times, most recent failure: Lost task 1.3 in stage 10.0 (TID 14) "
        "(192.0.2.2 executor driver): org.apache.spark.SparkException: Python worker exited "
        "unexpectedly (crashed). Consider setting "
        "'spark.python.worker.faulthandler.enabled' configuration to 'true' for the better "
        "Python traceback.\n"
        "Caused by: java.net.SocketException: Connection reset\n"
        "\t... 28 more\n"
    )
    assert failure_cause(RuntimeError(text)) == (
        "Python worker exited unexpectedly (crashed) (a task tried 4 times)"
    )
