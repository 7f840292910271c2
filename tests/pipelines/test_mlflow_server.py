"""The pipeline against a real MLflow tracking server over HTTP (sqlite backend, loopback only)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crm_engine.cli import app

AS_OF = "2024-10-01"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=open(root / "server.log", "wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_TRACKING_URI": ""},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (root / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"mlflow server did not start:\n{log}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_pipeline_logs_run_tree_and_registers_models(
    mlflow_server: str, generated_operator: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["run", "--data", str(generated_operator), "--out", str(out), "--as-of", AS_OF, "--quiet"],
    )
    assert result.exit_code == 0, result.output
    assert not (out / "mlflow.db").exists(), "a server URI must not create the embedded store"

    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("crm-engine")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["crm.as_of"] == AS_OF
    children = {
        r.data.tags["crm.stage"]: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert {"profile", "segmentation", "valuation", "churn"} <= set(children)
    churn = children["churn"].data
    assert churn.metrics["churn.roc_auc"] > 0.6
    # auto fits both learners: the kept one is registered, the other logged beside it
    kept = churn.params["model"]
    other = {"lightgbm": "logistic", "logistic": "lightgbm"}[kept]
    assert churn.metrics[f"churn.{kept}.roc_auc"] == churn.metrics["churn.roc_auc"]
    assert f"churn.{other}.roc_auc" in churn.metrics
    assert churn.tags["crm.churn_challenger"].startswith(f"{other} models:/")
    challenger = mlflow.pyfunc.load_model(churn.tags["crm.churn_challenger"].split()[1])
    assert challenger.metadata.get_input_schema() is not None
    assert {"churn.empc", "churn.empc_share", "retention.contacts"} <= set(churn.metrics)
    assert "customers" in children["profile"].data.metrics
    assert parent.data.metrics["scores_rows"] > 0
    registered = {m.name for m in client.search_registered_models()}
    assert {"crm-churn", "crm-loyalty", "crm-segmentation", "crm-clv"} <= registered
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.html", "manifest.json"} <= artifacts
