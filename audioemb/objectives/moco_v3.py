"""MoCo v3 (Chen, Xie & He, 2021): no queue; in-batch negatives, a predictor after the projector.

Loss: 2 tau (InfoNCE(q1, k2) + InfoNCE(q2, k1)) with q = predictor(projector(encoder(x))) and keys from a
momentum encoder whose rate rises from 0.99 to 1 on a cosine schedule.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..losses.contrastive import info_nce_loss
from ..nn.heads import mlp
from .base import Batch, Objective, frozen_copy


class MoCoV3(Objective):
    name = "moco_v3"
    tiny_params: ClassVar[dict] = {"proj_dim": 32, "hidden": 64}

    def __init__(self, encoder, frontend, views, proj_dim: int = 256, hidden: int = 1024, temperature: float = 0.2,
                 base_momentum: float = 0.99):
        super().__init__(encoder, frontend, views)
        self.projector = mlp(encoder.embedding_dim, hidden, proj_dim, layers=3, last_bn=True)
        self.predictor = mlp(proj_dim, hidden, proj_dim, layers=2, last_bn=True)
        self.key_encoder = frozen_copy(encoder)
        self.key_projector = frozen_copy(self.projector)
        self.temperature, self.base_momentum = temperature, base_momentum

    def momentum_pairs(self):
        return [(self.encoder, self.key_encoder), (self.projector, self.key_projector)]

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        v1, v2 = self.two_views(batch.waveforms)
        y1, y2 = self.embed(v1), self.embed(v2)
        q1, q2 = self.predictor(self.projector(y1)), self.predictor(self.projector(y2))
        with torch.no_grad():
            k1 = self.key_projector(self.embed(v1, self.key_encoder))
            k2 = self.key_projector(self.embed(v2, self.key_encoder))
        q1, q2, k1, k2 = self.f32(q1, q2, k1, k2)
        t = self.temperature
        loss = 2 * t * (info_nce_loss(q1, k2, temperature=t) + info_nce_loss(q2, k1, temperature=t))
        return {"loss": loss, "embeddings": y1.detach()}


OBJECTIVE = MoCoV3
