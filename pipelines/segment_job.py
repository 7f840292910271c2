"""Segment job: profile at ``as_of`` -> spend levels, age bands, behavioural segments on disk."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from crm_engine.config import PipelineConfig
from crm_engine.io import DataError, load_tables, write_parquet_atomic
from features import build_profile
from segmentation import SegmentationResult, Segmenter, segment_customers

__all__ = [
    "MODEL_FILE",
    "SegmentJobResult",
    "default_previous",
    "load_segmenter",
    "save_segmenter",
    "segment_job",
]

MODEL_FILE = "segmentation_model.pkl"
PROFILES_FILE = "segment_profiles.parquet"
MIGRATION_FILE = "segment_migration.parquet"
REPORT_FILE = "segmentation.json"
SEGMENTS_CONTRACT = "crm.segments/v1"


@dataclass(frozen=True)
class SegmentJobResult:
    """Paths written by :func:`segment_job` and the in-memory stage result."""

    segments_path: Path
    profiles_path: Path
    model_path: Path
    report_path: Path
    migration_path: Path | None
    previous_path: Path | None
    result: SegmentationResult


def default_previous(out: Path) -> Path | None:
    """The last run's model beside ``out`` (``segmentation_model.pkl``), if there is one."""
    candidate = Path(out).parent / MODEL_FILE
    return candidate if candidate.is_file() else None


def load_segmenter(path: Path) -> Segmenter:
    """Unpickle a fitted :class:`Segmenter` (only load files this tool wrote: pickle runs code).

    Raises
    ------
    DataError
        When the file is missing, unreadable or not a fitted segmenter.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            model = pickle.load(fh)
    except FileNotFoundError:
        raise DataError(f"previous segmentation model not found: {path}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as e:
        raise DataError(f"{path} is not a readable segmentation model: {e}") from None
    if not isinstance(model, Segmenter) or not hasattr(model, "pipeline_"):
        raise DataError(f"{path} does not hold a fitted Segmenter (got {type(model).__name__})")
    return model


def save_segmenter(model: Segmenter, path: Path) -> Path:
    """Pickle ``model`` to ``path`` atomically (temporary file beside it, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def segment_job(
    data_dir: Path,
    as_of: dt.date,
    out: Path,
    cfg: PipelineConfig,
    previous: Path | None = None,
) -> SegmentJobResult:
    """Segment every customer at ``as_of`` and write the results beside ``out``.

    Writes ``out`` (customer_id, as_of, spend_level, age_band, segment_id, segment_name),
    ``segment_profiles.parquet``, ``segmentation_model.pkl``, ``segmentation.json`` (the
    report: k, per-k scores, alignment) and, with a previous model,
    ``segment_migration.parquet``. Nothing is written when a computing step fails.

    Parameters
    ----------
    data_dir
        Directory of the input tables.
    as_of
        First day not observed.
    out
        Segments Parquet file.
    cfg
        Pipeline config (``features`` and ``segmentation`` sections are used).
    previous
        The last run's ``segmentation_model.pkl`` to keep segment ids stable; None starts
        fresh ids.
    """
    out = Path(out)
    previous_model = load_segmenter(previous) if previous is not None else None
    tables = load_tables(Path(data_dir))
    missing = [t for t in ("customers", "transactions") if t not in tables]
    if missing:
        raise DataError(f"no {' or '.join(missing)} table under {data_dir}")
    profile = build_profile(tables, as_of, cfg.features).collect(engine="streaming")
    if profile.height == 0:
        raise DataError(f"no active customers at as_of={as_of} under {data_dir}")
    result = segment_customers(profile, cfg.segmentation, previous_model)

    directory = out.parent
    meta = {
        "contract": SEGMENTS_CONTRACT,
        "as_of": as_of.isoformat(),
        "segmentation.algorithm": cfg.segmentation.algorithm,
        "segmentation.k": str(result.model.k_),
    }
    segments = result.assignments.with_columns(pl.lit(as_of).alias("as_of")).select(
        "customer_id", "as_of", "spend_level", "age_band", "segment_id", "segment_name"
    )
    # everything is computed before the first write; the model goes last, so a crash while
    # writing leaves the previous model in place for the next run's alignment
    write_parquet_atomic(segments, out, meta)
    profiles_path = write_parquet_atomic(result.profiles, directory / PROFILES_FILE, meta)
    migration_path = None
    if result.migration is not None:
        migration_path = write_parquet_atomic(result.migration, directory / MIGRATION_FILE, meta)
    else:  # a stale matrix from an earlier aligned run would describe another pair of models
        with contextlib.suppress(FileNotFoundError):
            (directory / MIGRATION_FILE).unlink()
    report = {
        "as_of": as_of.isoformat(),
        "previous_model": str(previous) if previous else None,
        **result.report,
    }
    report_path = directory / REPORT_FILE
    fd, tmp = tempfile.mkstemp(prefix=f".{REPORT_FILE}.", suffix=".tmp", dir=directory)
    with os.fdopen(fd, "w") as fh:
        json.dump(report, fh, indent=2)
    os.replace(tmp, report_path)
    model_path = save_segmenter(result.model, directory / MODEL_FILE)
    return SegmentJobResult(
        segments_path=out,
        profiles_path=profiles_path,
        model_path=model_path,
        report_path=report_path,
        migration_path=migration_path,
        previous_path=previous,
        result=result,
    )
