"""SimSiam (Chen & He, 2021): a predictor and stop-gradient; no momentum encoder, no negatives."""

from __future__ import annotations

from typing import ClassVar

import torch

from ..losses.siamese import simsiam_loss
from ..nn.heads import mlp
from .base import Batch, Objective


class SimSiam(Objective):
    name = "simsiam"
    tiny_params: ClassVar[dict] = {"proj_dim": 32, "hidden": 64, "pred_hidden": 16}

    def __init__(self, encoder, frontend, views, proj_dim: int = 1024, hidden: int = 1024, pred_hidden: int = 256):
        super().__init__(encoder, frontend, views)
        self.projector = mlp(encoder.embedding_dim, hidden, proj_dim, layers=3, last_bn=True)
        self.predictor = mlp(proj_dim, pred_hidden, proj_dim, layers=2)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        v1, v2 = self.two_views(batch.waveforms)
        y1, y2 = self.embed(v1), self.embed(v2)
        z1, z2 = self.projector(y1), self.projector(y2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        p1, p2, z1, z2 = self.f32(p1, p2, z1, z2)
        loss = simsiam_loss(p1, z2) / 2 + simsiam_loss(p2, z1) / 2  # z is detached inside: stop-gradient
        return {"loss": loss, "embeddings": y1.detach()}


OBJECTIVE = SimSiam
