"""Barlow Twins (Zbontar et al., 2021): the cross-correlation of two views' embeddings, computed across
the batch, is pushed toward the identity (invariance on the diagonal, redundancy reduction off it)."""

from __future__ import annotations

from typing import ClassVar

import torch

from ..losses.siamese import barlow_twins_loss
from ..nn.heads import mlp
from .base import Batch, Objective


class BarlowTwins(Objective):
    name = "barlow_twins"
    tiny_params: ClassVar[dict] = {"proj_dim": 32, "hidden": 64}

    def __init__(self, encoder, frontend, views, proj_dim: int = 1024, hidden: int = 1024, lambda_: float = 5e-3):
        super().__init__(encoder, frontend, views)
        self.projector = mlp(encoder.embedding_dim, hidden, proj_dim, layers=3)
        self.lambda_ = lambda_

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        v1, v2 = self.two_views(batch.waveforms)
        y1, y2 = self.embed(v1), self.embed(v2)
        z1, z2 = self.f32(self.projector(y1), self.projector(y2))
        return {"loss": barlow_twins_loss(z1, z2, self.lambda_), "embeddings": y1.detach()}


OBJECTIVE = BarlowTwins
