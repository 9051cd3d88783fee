"""Encoder registry: ``config["type"]`` -> class. Architectures come only from a model's config.json."""

from __future__ import annotations

from .audiontt import AudioNTT
from .base import Encoder
from .concat import ConcatEncoder
from .framenet import FrameNet
from .npcnet import NPCNet

ENCODERS: dict[str, type[Encoder]] = {"audiontt": AudioNTT, "framenet": FrameNet, "npcnet": NPCNet,
                                     "concat": ConcatEncoder}


def build_encoder(cfg: dict) -> Encoder:
    """Build an encoder from its config dict (``{"type": ..., **kwargs}``); unknown types are refused."""
    cfg = dict(cfg)
    kind = cfg.pop("type", None)
    if kind not in ENCODERS:
        raise ValueError(f"unknown encoder type {kind!r}; known: {sorted(ENCODERS)}")
    return ENCODERS[kind](**cfg)


__all__ = ["ENCODERS", "AudioNTT", "ConcatEncoder", "Encoder", "FrameNet", "NPCNet", "build_encoder"]
