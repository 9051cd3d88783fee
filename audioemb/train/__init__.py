"""Training (the ``[train]`` extra). This package's own import needs no torch, so the command line can list the
recipes on the plain install."""

from __future__ import annotations

from importlib import resources


def list_recipes() -> list[str]:
    """Names of the shipped training recipes (``audioemb/train/recipes/*.json``), sorted."""
    return sorted(p.name[:-5] for p in resources.files(__package__).joinpath("recipes").iterdir()
                  if p.name.endswith(".json"))
