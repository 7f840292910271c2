"""Keeping a fitted segmenter between runs, so the next run can align its segment ids.

The model is stored as data, never as a pickle: a skops file (a zip of JSON and ``.npy``
arrays) of the sklearn pipeline and the segmenter's learned arrays, loaded back with a
fixed allowlist of types (:data:`TRUSTED_TYPES`), so loading constructs only those.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from crm_engine.io import DataError
from segmentation.cluster import Segmenter

__all__ = [
    "LEGACY_MODEL_FILE",
    "MODEL_FILE",
    "TRUSTED_TYPES",
    "load_segmenter",
    "save_segmenter",
]

MODEL_FILE = "segmentation_model.skops"
"""The fitted segmenter's file name in an output directory."""

LEGACY_MODEL_FILE = "segmentation_model.pkl"
"""What older versions wrote: a pickle, never loaded (the next run fits fresh ids)."""

FORMAT = "crm.segmenter/v1"

TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "segmentation.preprocess.log1p_nonneg",
    "segmentation.preprocess.multiply_columns",
    "sklearn.cluster._bisect_k_means._BisectingTree",
    "sklearn.cluster._kmeans._kmeans_single_lloyd",
)
"""Types a segmentation model file may hold besides skops' defaults (builtins, numpy arrays,
scikit-learn estimators). Fixed here: never taken from the file being loaded."""

_NOT_STORED = frozenset({"labels_"})
"""Fitted attributes left out: ``labels_`` has one entry per customer of the fit profile."""

_PICKLE_MAGIC = b"\x80"


def _frame_state(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "columns": [str(c) for c in frame.columns],
        "values": [frame.iloc[:, i].to_numpy() for i in range(frame.shape[1])],
    }


def _state(model: Segmenter) -> dict[str, Any]:
    fitted: dict[str, Any] = {}
    frames: dict[str, Any] = {}
    for name, value in vars(model).items():
        if not name.endswith("_") or name.startswith("_") or name in _NOT_STORED:
            continue
        if isinstance(value, pd.DataFrame):
            frames[name] = _frame_state(value)
        elif name != "pipeline_":
            fitted[name] = value
    return {
        "format": FORMAT,
        "params": model.get_params(deep=False),
        "pipeline": model.pipeline_,
        "fitted": fitted,
        "frames": frames,
    }


def _from_state(state: Any, path: Path) -> Segmenter:
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise DataError(f"{path} is not a {FORMAT} segmentation model (got {got!r})")
    pipeline = state.get("pipeline")
    if not isinstance(pipeline, Pipeline):
        raise DataError(f"{path} holds no fitted segmentation pipeline")
    params = state.get("params", {})
    unknown = sorted(set(params) - set(Segmenter().get_params(deep=False)))
    if unknown:
        raise DataError(f"{path}: unknown segmenter parameter(s) {unknown}")
    model = Segmenter(**params)
    attrs = {**state.get("fitted", {}), "pipeline_": pipeline}
    for name, frame in state.get("frames", {}).items():
        attrs[name] = pd.DataFrame(dict(zip(frame["columns"], frame["values"], strict=True)))
    bad = sorted(a for a in attrs if not a.endswith("_") or a.startswith("_"))
    if bad:
        raise DataError(f"{path}: not fitted attribute names {bad}")
    for name, value in attrs.items():
        setattr(model, name, value)
    if not isinstance(getattr(model, "segment_ids_", None), np.ndarray):
        raise DataError(f"{path} holds no segment ids")
    return model


def load_segmenter(path: Path, sha256: str | None = None) -> Segmenter:
    """Load a fitted :class:`Segmenter` written by :func:`save_segmenter` (as data only).

    The loaded model has every fitted attribute except ``labels_`` (the fit rows' labels).

    Parameters
    ----------
    path
        The model file.
    sha256
        The checksum the run that wrote it recorded (its manifest, or ``segmentation.json``):
        the file is only read when it still has it. None: the caller vouches for the file
        (``crm-engine segment --previous FILE``).

    Raises
    ------
    DataError
        When the file is missing, differs from its recorded checksum, is a pickle, names a
        type outside :data:`TRUSTED_TYPES`, or is not a fitted segmenter.
    """
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    path = Path(path)
    try:
        data = path.read_bytes()  # read once: the bytes checked are the bytes loaded
    except (FileNotFoundError, IsADirectoryError):
        raise DataError(f"previous segmentation model not found: {path}") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise DataError(
            f"{path} does not match the sha256 its run recorded: not loading it; remove it, "
            "or run with a fresh segmentation"
        )
    if data.startswith(_PICKLE_MAGIC):
        raise DataError(
            f"{path} is a pickle (written by an older crm-engine): pickles are not loaded; "
            "run without it to fit fresh segment ids"
        )
    try:
        state = sio.loads(data, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as e:
        raise DataError(f"{path} is not loaded: {str(e).splitlines()[0]}") from None
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path} is not a readable segmentation model: {first}") from None
    return _from_state(state, path)


def save_segmenter(model: Segmenter, path: Path) -> Path:
    """Write ``model`` to ``path`` as a skops file (inside a run's staging directory: the
    commit is atomic)."""
    import skops.io as sio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(_state(model), path, compression=zipfile.ZIP_DEFLATED)
    return path
