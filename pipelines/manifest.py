"""The run manifest: what went in (fingerprints), what came out (checksums), how long it took."""

from __future__ import annotations

import hashlib
import json
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
