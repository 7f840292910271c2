"""The run manifest: what went in (fingerprints), what came out (checksums), how long it took."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crm_engine.io import file_sha256, find_tables


def _digest(files: list[Path], root: Path) -> dict[str, Any]:
    """The files (relative to ``root``) with their sizes, and one sha256 over their names and
    contents: how a table of several files is fingerprinted."""
    h = hashlib.sha256()
    listed = []
    for f in files:
        h.update(f.name.encode())
        h.update(file_sha256(f).encode())
        listed.append({"file": str(f.relative_to(root)), "bytes": f.stat().st_size})
    return {"files": listed, "bytes": sum(x["bytes"] for x in listed), "sha256": h.hexdigest()}


def input_fingerprints(data_dir: Path, rows: dict[str, int | None]) -> dict[str, Any]:
    """Per input table: its files with sizes, the row count, and one hash over all its files."""
    return {
        name: {**_digest(source.files(), data_dir), "rows": rows.get(name)}
        for name, source in find_tables(data_dir).items()
    }


class InputHashing:
    """:func:`input_fingerprints` on a thread of its own, started when the inputs are validated.

    Hashing reads every input file once more: at 10M customers 7.6 GB, 45 s at the end of a
    run, most of it waiting on the disk (the run had pushed the files out of the page cache).
    Started right after validation, which has just read them, it overlaps with the stages and
    is done by the time the manifest is written. The thread is a daemon: a run that fails does
    not wait for it.
    """

    def __init__(self, data_dir: Path, rows: dict[str, int | None]) -> None:
        self._data_dir, self._rows = data_dir, rows
        self._result: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="crm-input-hashing", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = input_fingerprints(self._data_dir, self._rows)
        except BaseException as e:  # raised in the caller of result()
            self._error = e

    def result(self) -> dict[str, Any]:
        """The fingerprints (waits for the thread); its error, raised here, when it failed."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def recorded_sha256(run_dir: Path, name: str) -> str | None:
    """The sha256 a committed run recorded for one of its files: its manifest's ``outputs``, or
    (for ``crm-engine segment``) ``segmentation.json``'s ``model_sha256``; None when none."""
    for record in ("manifest.json", "segmentation.json"):
        path = Path(run_dir) / record
        if path.is_file():
            doc = json.loads(path.read_text())
            return doc.get("outputs", {}).get(name, {}).get("sha256") or doc.get("model_sha256")
    return None


def output_digest(path: Path) -> dict[str, Any]:
    """Size and sha256 of an output file; of a directory of parts (``output.single_file`` off)
    its parts' sizes and one sha256 over them, as an input table of several files is
    fingerprinted."""
    path = Path(path)
    if path.is_dir():
        return _digest(sorted(p for p in path.glob("*.parquet") if p.is_file()), path)
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


def output_checksums(out_dir: Path, names: list[str]) -> dict[str, Any]:
    """:func:`output_digest` of each output the run wrote, by name."""
    return {name: output_digest(out_dir / name) for name in names if (out_dir / name).exists()}


def changed_output(run_dir: Path, name: str, manifest: Mapping[str, Any]) -> str | None:
    """Why a committed run's output ``name`` (a file or a directory of parts) is not what its
    run wrote (missing, no sha256 recorded, or changed since), or None when it is."""
    path = Path(run_dir) / name
    recorded = manifest.get("outputs", {}).get(name, {}).get("sha256")
    if not path.exists():
        return f"{name} is missing"
    if recorded is None:
        return f"{name} has no recorded sha256"
    if output_digest(path)["sha256"] != recorded:
        return f"{name} does not match the sha256 its run recorded"
    return None
