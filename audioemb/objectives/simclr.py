"""SimCLR (Chen et al., 2020): two views of a recording, NT-Xent over the 2N views of a batch.

The contrastive loss is selectable (``loss=``): nt_xent (default), info_nce, npair, triplet, max_margin or
align_uniform (Wang & Isola, 2020), the family the survey lists; negatives are the batch's other recordings.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..losses.contrastive import CONTRASTIVE_LOSSES, contrastive_loss
from ..nn.heads import mlp
from .base import Batch, Objective


class SimCLR(Objective):
    name = "simclr"
    tiny_params: ClassVar[dict] = {"proj_dim": 32, "hidden": 64}

    def __init__(self, encoder, frontend, views, proj_dim: int = 128, hidden: int = 1024, temperature: float = 0.2,
                 loss: str = "nt_xent", margin: float = 1.0):
        super().__init__(encoder, frontend, views)
        if loss not in CONTRASTIVE_LOSSES:
            raise ValueError(f"loss must be one of {CONTRASTIVE_LOSSES}, got {loss!r}")
        self.projector = mlp(encoder.embedding_dim, hidden, proj_dim)
        self.temperature, self.loss_name, self.margin = temperature, loss, margin

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        v1, v2 = self.two_views(batch.waveforms)
        y1, y2 = self.embed(v1), self.embed(v2)
        z1, z2 = self.f32(self.projector(y1), self.projector(y2))
        loss = contrastive_loss(self.loss_name, z1, z2, self.temperature, self.margin)
        return {"loss": loss, "embeddings": y1.detach()}


OBJECTIVE = SimCLR
