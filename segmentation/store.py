"""Keeping a fitted segmenter between runs, so the next run can align its segment ids."""

from __future__ import annotations

import pickle
from pathlib import Path

from crm_engine.io import DataError, file_sha256
from segmentation.cluster import Segmenter

__all__ = ["MODEL_FILE", "load_segmenter", "save_segmenter"]

MODEL_FILE = "segmentation_model.pkl"
"""The fitted segmenter's file name in an output directory."""


def load_segmenter(path: Path, sha256: str | None = None) -> Segmenter:
    """Unpickle a fitted :class:`Segmenter` (only load files this tool wrote: pickle runs code).

    Parameters
    ----------
    path
        The model file.
    sha256
        The checksum the run that wrote it recorded (its manifest, or ``segmentation.json``):
        the file is only unpickled when it still has it. None: the caller vouches for the file
        (``crm-engine segment --previous FILE``).

    Raises
    ------
    DataError
        When the file is missing, differs from its recorded checksum, is unreadable or is not
        a fitted segmenter.
    """
    path = Path(path)
    if sha256 is not None and path.is_file() and file_sha256(path) != sha256:
        raise DataError(
            f"{path} does not match the sha256 its run recorded: not loading it (a pickle runs "
            "code when loaded); remove it, or run with a fresh segmentation"
        )
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
    """Pickle ``model`` to ``path`` (inside a run's staging directory: the commit is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path
