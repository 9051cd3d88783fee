"""APC: Autoregressive Predictive Coding (Chung et al., 2019).

A causal GRU context network reads log-mel frames and predicts the frames ``shift`` output steps ahead
(L1 loss). Forward and backward APC are separate models: the backward one is the same network with
``reverse=True`` in its encoder config, reading the clip from the end and predicting the past. Their frame
outputs can be concatenated at inference (``audioemb export --concat``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..losses.predictive import frame_blocks, masked_l1_loss
from .base import Batch, Objective


class APC(Objective):
    name = "apc"
    tiny_params: ClassVar[dict] = {"shift": 2}
    tiny_encoder: ClassVar[dict] = {"type": "framenet", "dim": 32, "layers": 1, "heads": 2, "ff": 64, "channels": 16,
        "context": "gru", "causal": True}
    n_crops = 1

    def __init__(self, encoder, frontend, views, shift: int = 3):
        super().__init__(encoder, frontend, views)
        if not getattr(encoder, "causal", False):
            raise ValueError("APC needs a causal encoder (framenet with causal=true)")
        self.shift = shift
        self.head = nn.Linear(encoder.frame_dim, encoder.frame_hop * frontend.cfg.n_mels)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.views(self.logmels(batch.waveforms)[:, 0])
        frames = self.encoder(x)  # real time order, (B, T', D)
        target = frame_blocks(x, self.encoder.frame_hop)[:, : frames.shape[1]]
        n, k = frames.shape[1], self.shift
        if getattr(self.encoder, "reverse", False):  # c_t has read t..end: predict the past frame t - k
            pred, tgt = self.head(frames[:, k:]), target[:, : n - k]
        else:
            pred, tgt = self.head(frames[:, : n - k]), target[:, k:]
        loss = masked_l1_loss(*self.f32(pred, tgt))
        return {"loss": loss, "embeddings": self.encoder.pool(frames).detach()}


OBJECTIVE = APC
