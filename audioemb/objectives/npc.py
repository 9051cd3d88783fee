"""NPC: Non-autoregressive Predictive Coding (Liu, Chung & Glass, 2021).

Masked convolution blocks (the ``npcnet`` encoder) see only local context around each frame, never the
frame itself, and a linear head predicts that frame's log-mel (L1 loss on every frame).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..losses.predictive import masked_l1_loss
from .base import Batch, Objective


class NPC(Objective):
    name = "npc"
    tiny_params: ClassVar[dict] = {}
    tiny_encoder: ClassVar[dict] = {"type": "npcnet", "dim": 16, "layers": 2}
    n_crops = 1

    def __init__(self, encoder, frontend, views):
        super().__init__(encoder, frontend, views)
        if encoder.config()["type"] != "npcnet":
            raise ValueError("NPC needs the npcnet encoder")
        self.head = nn.Linear(encoder.frame_dim, frontend.cfg.n_mels)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.views(self.logmels(batch.waveforms)[:, 0])
        frames = self.encoder(x)
        loss = masked_l1_loss(*self.f32(self.head(frames), x.transpose(1, 2)))
        return {"loss": loss, "embeddings": self.encoder.pool(frames).detach()}


OBJECTIVE = NPC
