"""Encoder registry: ``config["type"]`` -> class. Architectures come only from a model's config.json."""

from __future__ import annotations

from .audiontt import AudioNTT
from .base import Encoder
from .framenet import FrameNet

ENCODERS: dict[str, type[Encoder]] = {"audiontt": AudioNTT, "framenet": FrameNet}


def build_encoder(cfg: dict) -> Encoder:
    """Build an encoder from its config dict (``{"type": ..., **kwargs}``); unknown types are refused."""
    cfg = dict(cfg)
    kind = cfg.pop("type", None)
    if kind not in ENCODERS:
        raise ValueError(f"unknown encoder type {kind!r}; known: {sorted(ENCODERS)}")
    return ENCODERS[kind](**cfg)


__all__ = ["ENCODERS", "AudioNTT", "Encoder", "FrameNet", "build_encoder"]
