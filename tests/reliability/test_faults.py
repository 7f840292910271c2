"""Faults: a run is committed whole or not at all; one run at a time; failures are one line.

Each test runs the real `crm-engine` (a child process where the fault is the process dying) and
compares sha256 of every file of the previous output before and after.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crm_engine.cli import app
from crm_engine.commit import CURRENT, FAULT_ENV, LOCK_FILE, RUNS_DIR
from crm_engine.io import file_sha256

AS_OF = "2024-10-01"
CLI = [str(Path(sys.executable).parent / "crm-engine")]


def _run_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run", "--data", str(data), "--out", str(out), "--as-of", AS_OF, "--quiet",
        "--no-tracking", "--stages", "profile", *extra,
    ]  # fmt: skip


def _child(
    args: list[str], env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **kw,  # type: ignore[arg-type]
    )


def _digest(run_dir: Path) -> dict[str, str]:
    """sha256 of every file of a committed run, by relative path."""
    root = run_dir.resolve()
    return {
        str(p.relative_to(root)): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def committed(generated_operator: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("committed") / "out"
    result = _child(_run_args(generated_operator, out))
    assert result.returncode == 0, result.stderr
    return out


def test_the_layout_commits_by_one_link(committed: Path) -> None:
    current = committed / CURRENT
    assert current.is_symlink()
    assert os.readlink(current).startswith(f"{RUNS_DIR}/")
    for name in ("scores.parquet", "manifest.json", "report.html"):
        assert (committed / name).is_symlink() and (committed / name).is_file()
        assert (committed / name).resolve() == (current / name).resolve()
    manifest = json.loads((committed / "manifest.json").read_text())
    for name, entry in manifest["outputs"].items():
        if "sha256" in entry:
            assert entry["sha256"] == file_sha256(current / name), name


@pytest.mark.parametrize("point", ["split", "stage:profile", "before-rename", "after-rename"])
def test_a_kill_before_the_commit_leaves_the_previous_output(
    committed: Path, generated_operator: Path, tmp_path: Path, point: str
) -> None:
    out = tmp_path / "out"
    shutil.copytree(committed, out, symlinks=True)
    before = _digest(out / CURRENT)
    args = _run_args(generated_operator, out)
    if point == "split":  # killed once the input is split in buckets (scratch written)
        config = tmp_path / "buckets.toml"
        config.write_text("[engine]\nbuckets = 3\n")
        args = [args[0], str(config), *args[1:]]
    killed = _child(args, env={FAULT_ENV: point})
    assert killed.returncode == -signal.SIGKILL
    if point == "split":
        assert list((out / RUNS_DIR).rglob("_bucket=*"))  # the dead run's scratch is left
    assert _digest(out / CURRENT) == before
    assert (out / LOCK_FILE).exists()  # the dead run's lock is still there

    again = _child(_run_args(generated_operator, out, "--stages", "valuation"))
    assert again.returncode == 0, again.stderr
    runs = sorted(p.name for p in (out / RUNS_DIR).iterdir())
    assert not [r for r in runs if r.startswith(".")], runs  # the dead run's staging is gone
    assert not (out / LOCK_FILE).exists()
    assert _digest(out / CURRENT) != before
    manifest = json.loads((out / "manifest.json").read_text())
    assert "valuation" in manifest["timings_s"]


@pytest.mark.parametrize("command", ["run", "features", "churn"])
def test_a_kill_leaves_no_temporary_directory_behind(
    committed: Path, generated_operator: Path, tmp_path: Path, command: str
) -> None:
    """A killed run's temporary directories are in its staging area, which the next run
    removes: nothing piles up in $TMPDIR (a `crm-run-*` was left there by every kill). A run
    that writes nowhere (`churn train`) keeps its scratch in $TMPDIR under its pid, and the
    next one removes a dead process's."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out"
    if command == "run":
        shutil.copytree(committed, out, symlinks=True)
        args = _run_args(generated_operator, out)
    elif command == "features":
        args = ["features", "--data", str(generated_operator), "--as-of", AS_OF,
                "--out", str(out / "profiles.parquet")]  # fmt: skip
    else:
        out.mkdir()
        args = ["churn", "train", "--data", str(generated_operator), "--as-of", AS_OF,
                "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}"]  # fmt: skip
    killed = _child(args, env={FAULT_ENV: "stage:profile", "TMPDIR": str(tmp)})
    assert killed.returncode == -signal.SIGKILL
    left = [p.name for p in tmp.iterdir() if p.name.startswith("crm-")]
    assert left == ([] if command != "churn" else [left[0]]), left

    again = _child(args, env={"TMPDIR": str(tmp)})
    assert again.returncode == 0, again.stderr
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("crm-")]
    staged = [p for p in out.rglob(".*") if p.name != LOCK_FILE]
    assert not staged, staged


def test_a_kill_after_the_commit_leaves_a_whole_new_run(
    committed: Path, generated_operator: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(committed, out, symlinks=True)
    old = os.readlink(out / CURRENT)
    killed = _child(_run_args(generated_operator, out), env={FAULT_ENV: "after-commit"})
    assert killed.returncode == -signal.SIGKILL
    assert os.readlink(out / CURRENT) != old
    manifest = json.loads((out / CURRENT / "manifest.json").read_text())
    for name, entry in manifest["outputs"].items():
        if "sha256" in entry:
            assert entry["sha256"] == file_sha256(out / CURRENT / name), name


def test_keeps_the_last_n_runs(committed: Path, generated_operator: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(committed, out, symlinks=True)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text("[output]\nkeep_runs = 2\n")
    command, *options = _run_args(generated_operator, out)
    for _ in range(3):
        result = _child([command, str(cfg), *options])
        assert result.returncode == 0, result.stderr
    runs = sorted(p.name for p in (out / RUNS_DIR).iterdir())
    assert len(runs) == 2
    assert Path(os.readlink(out / CURRENT)).name == runs[-1]


def test_a_second_run_is_refused_while_the_first_lives(
    committed: Path, generated_operator: Path, tmp_path: Path
) -> None:
    import psutil

    out = tmp_path / "out"
    shutil.copytree(committed, out, symlinks=True)
    before = _digest(out / CURRENT)
    me = psutil.Process()
    holder = {
        "pid": me.pid,
        "create_time": me.create_time(),
        "started": "2026-12-01T00:00:00+00:00",
    }
    (out / LOCK_FILE).write_text(json.dumps(holder))
    result = CliRunner().invoke(app, _run_args(generated_operator, out))
    assert result.exit_code == 1
    assert f"in use by another run (pid {me.pid}, started 2026-12-01" in result.output
    assert "Traceback" not in result.output
    assert _digest(out / CURRENT) == before

    # a dead holder's lock is taken over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_FILE).write_text(json.dumps({**holder, "pid": dead.pid}))
    result = CliRunner().invoke(app, _run_args(generated_operator, out))
    assert result.exit_code == 0, result.output
    assert not (out / LOCK_FILE).exists()


def _small_files() -> None:
    """In the child: files may not grow past 64 KiB, as on a full disk (EFBIG, not a signal)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_a_full_disk_is_one_line_and_leaves_the_previous_output(
    committed: Path, generated_operator: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(committed, out, symlinks=True)
    before = _digest(out / CURRENT)
    result = _child(_run_args(generated_operator, out), preexec_fn=_small_files)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and "File too large" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert _digest(out / CURRENT) == before
    assert not [p for p in (out / RUNS_DIR).iterdir() if p.name.startswith(".")]


def test_a_dead_tracking_server_is_one_line(
    committed: Path, generated_operator: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(committed, out, symlinks=True)
    before = _digest(out / CURRENT)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text('[mlflow]\ntracking_uri = "http://127.0.0.1:9"\n')
    args = _run_args(generated_operator, out)
    args.remove("--no-tracking")
    result = _child([args[0], str(cfg), *args[1:]], env={"MLFLOW_TRACKING_URI": ""})
    assert result.returncode == 1, result.stderr
    assert "tracking store http://127.0.0.1:9 cannot be used" in result.stderr
    assert "Traceback" not in result.stderr
    assert _digest(out / CURRENT) == before


def _runs_by_status(tracking_uri: str) -> dict[str, list[dict[str, str]]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    out: dict[str, list[dict[str, str]]] = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            out.setdefault(run.info.status, []).append(run.data.tags)
    return out


def test_killed_and_terminated_runs_end_failed_in_mlflow(
    generated_operator: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    uri = f"sqlite:///{out / 'mlflow.db'}"
    args = _run_args(generated_operator, out)
    args.remove("--no-tracking")
    env = {"MLFLOW_TRACKING_URI": ""}

    killed = _child(args, env={**env, FAULT_ENV: "stage:profile"})
    assert killed.returncode == -signal.SIGKILL
    assert len(_runs_by_status(uri)["RUNNING"]) == 1  # a killed process cannot end its run

    terminated = _child(args, env={**env, FAULT_ENV: "stage:profile@SIGTERM"})
    assert terminated.returncode == 143, terminated.stderr
    assert "terminated (SIGTERM): nothing was written" in terminated.stderr
    assert "Traceback" not in terminated.stderr
    runs = _runs_by_status(uri)
    assert "RUNNING" not in runs  # the SIGTERM run ended itself, and ended the killed one
    assert len(runs["FAILED"]) == 2
    ended_by_next = [t for t in runs["FAILED"] if "crm.ended_by" in t]
    assert len(ended_by_next) == 1 and ended_by_next[0]["crm.pid"] != str(os.getpid())
    assert not (out / CURRENT).exists()  # neither run committed anything


def test_only_dead_processes_runs_are_ended(tmp_path: Path) -> None:
    import mlflow
    from mlflow import MlflowClient

    from crm_engine import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("faults")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = {**tracking.process_tags(), "crm.pid": str(dead.pid)}
    parent = client.create_run(exp, tags=gone)
    child = client.create_run(exp, tags={"mlflow.parentRunId": parent.info.run_id})
    alive = client.create_run(exp, tags=tracking.process_tags())  # this very process
    other_host = client.create_run(exp, tags={**gone, "crm.host": "elsewhere"})

    mlflow.set_tracking_uri(uri)
    try:
        assert tracking.fail_abandoned_runs("faults") == [parent.info.run_id]
    finally:
        mlflow.set_tracking_uri(None)
    status = {r: client.get_run(r).info.status for r in (
        parent.info.run_id, child.info.run_id, alive.info.run_id, other_host.info.run_id
    )}  # fmt: skip
    assert list(status.values()) == ["FAILED", "FAILED", "RUNNING", "RUNNING"]
