"""The run manifest: what went in (fingerprints), what came out (checksums), how long it took."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from crm_engine.io import file_sha256, find_tables


def input_fingerprints(data_dir: Path, rows: dict[str, int | None]) -> dict[str, Any]:
    """Per input table: its files with sizes, the row count, and one hash over all its files."""
    out: dict[str, Any] = {}
    for name, source in find_tables(data_dir).items():
        files = source.files()
        h = hashlib.sha256()
        listed = []
        for f in files:
            digest = file_sha256(f)
            h.update(f.name.encode())
            h.update(digest.encode())
            listed.append({"file": str(f.relative_to(data_dir)), "bytes": f.stat().st_size})
        out[name] = {
            "files": listed,
            "bytes": sum(x["bytes"] for x in listed),
            "rows": rows.get(name),
            "sha256": h.hexdigest(),
        }
    return out


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


def output_checksums(out_dir: Path, names: list[str]) -> dict[str, Any]:
    """Size and SHA-256 of each written output file."""
    result = {}
    for name in names:
        p = out_dir / name
        if p.is_file():
            result[name] = {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
    return result
