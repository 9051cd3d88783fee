"""ConcatEncoder: several encoders over the same log-mel, their frames concatenated (e.g. forward and
backward APC, Chung et al., 2019). All parts must share the frame hop and the number of layers."""

from __future__ import annotations

import torch
from torch import nn

from .base import Encoder


class ConcatEncoder(Encoder):
    def __init__(self, parts: list[dict]):
        super().__init__()
        from . import build_encoder

        if len(parts) < 2:
            raise ValueError("a concat encoder needs at least two parts")
        self.parts = nn.ModuleList(build_encoder(p) for p in parts)
        hops = {p.frame_hop for p in self.parts}
        layers = {p.n_layers for p in self.parts}
        if len(hops) != 1 or len(layers) != 1:
            raise ValueError(f"parts must share frame_hop and n_layers, got hops {hops} and layers {layers}")
        self.frame_hop = hops.pop()
        self.n_layers = layers.pop()
        self.frame_dim = sum(p.frame_dim for p in self.parts)

    def config(self) -> dict:
        return {"type": "concat", "parts": [p.config() for p in self.parts]}

    def hidden_states(self, logmel: torch.Tensor) -> list[torch.Tensor]:
        outs = [p.hidden_states(logmel) for p in self.parts]
        n = min(h[0].shape[1] for h in outs)
        return [torch.cat([h[i][:, :n] for h in outs], dim=-1) for i in range(self.n_layers)]
