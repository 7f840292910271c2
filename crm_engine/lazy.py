"""Names a package re-exports from a module that is imported only when first asked for."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, module: str, names: Iterable[str]) -> Callable[[str], Any]:
    """A package's module ``__getattr__`` (PEP 562) that finds ``names`` in ``module``, imported
    on first use: the MLflow wrappers import mlflow, which costs about 1.5 s.

    Parameters
    ----------
    package
        The package's name, for the error on any other name.
    module
        Where the names live (``"churn.pyfunc"``).
    names
        The names re-exported.
    """
    lazy = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name in lazy:
            return getattr(importlib.import_module(module), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
