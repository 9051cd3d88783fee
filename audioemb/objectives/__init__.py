"""SSL objectives: one file per framework; the file name is the registry key."""

from __future__ import annotations

import importlib
import pkgutil

from .base import Objective

__all__ = ["Objective", "get_objective", "list_objectives"]


def list_objectives() -> list[str]:
    """Names of every objective module (each defines ``OBJECTIVE``)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_"))


def get_objective(name: str) -> type[Objective]:
    """The objective class registered under ``name`` (its module file name)."""
    if name not in list_objectives():
        raise ValueError(f"unknown objective {name!r}; known: {list_objectives()}")
    return importlib.import_module(f"{__name__}.{name}").OBJECTIVE
