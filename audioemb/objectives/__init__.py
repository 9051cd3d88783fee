"""SSL objectives: one file per framework; the file name is the registry key."""

from __future__ import annotations

import importlib
import pkgutil

from ..nn.encoders import Encoder, build_encoder
from ..nn.frontend import LogMel, LogMelConfig
from ..nn.views import Views
from .base import Objective

__all__ = ["Objective", "build_frontend", "build_objective", "get_objective", "list_objectives"]


def list_objectives() -> list[str]:
    """Names of every objective module (each defines ``OBJECTIVE``)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_"))


def get_objective(name: str) -> type[Objective]:
    """The objective class registered under ``name`` (its module file name)."""
    if name not in list_objectives():
        raise ValueError(f"unknown objective {name!r}; known: {list_objectives()}")
    return importlib.import_module(f"{__name__}.{name}").OBJECTIVE


def build_frontend(cfg: dict) -> LogMel:
    """The log-mel frontend a config's ``frontend`` entry describes (per-band statistics not yet fitted)."""
    return LogMel(LogMelConfig(**{k: v for k, v in cfg.items() if k != "type"}))


def build_objective(cfg, n_clips: int = 0, frontend: LogMel | None = None,
                    encoder: Encoder | None = None) -> Objective:
    """The objective (frontend, encoder, views and heads) that the training settings ``cfg`` describe, set
    up for ``n_clips`` clips; ``frontend`` and ``encoder``, when given, are used instead of new ones (e.g.
    with statistics fitted or weights loaded, before any head copies them)."""
    frontend = build_frontend(cfg.frontend) if frontend is None else frontend
    encoder = build_encoder(cfg.encoder) if encoder is None else encoder
    if getattr(encoder, "readout", None) == "latents":  # FrameNet's: the objectives train the context too
        raise ValueError("the framenet readout 'latents' is an inference readout and is not trained; train with "
                         "the default readout, then `audioemb export --from MODEL --readout latents`")
    obj = get_objective(cfg.objective)(encoder, frontend, Views(cfg.views, std=frontend.std), **cfg.objective_params)
    obj.setup(n_clips)
    return obj
