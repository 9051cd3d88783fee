"""BYOL: Bootstrap Your Own Latent (Grill et al., 2020), with BYOL-A's audio views (Niizumi et al., 2021).

An online network (encoder, projector, predictor) predicts a target network's projection of another view
of the same recording; the target is an exponential moving average of the online weights.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..losses.byol import byol_loss
from ..nn.heads import mlp
from .base import Batch, Objective, frozen_copy


class BYOL(Objective):
    name = "byol"
    tiny_params: ClassVar[dict] = {"proj_dim": 32, "hidden": 64}

    def __init__(self, encoder, frontend, views, proj_dim: int = 256, hidden: int = 1024,
                 base_momentum: float = 0.99):
        super().__init__(encoder, frontend, views)
        d = encoder.embedding_dim
        self.projector = mlp(d, hidden, proj_dim)
        self.predictor = mlp(proj_dim, hidden, proj_dim)
        self.target_encoder = frozen_copy(encoder)
        self.target_projector = frozen_copy(self.projector)
        self.base_momentum = base_momentum

    def momentum_pairs(self):
        return [(self.encoder, self.target_encoder), (self.projector, self.target_projector)]

    def predictions(self, v1: torch.Tensor, v2: torch.Tensor, y1: torch.Tensor, y2: torch.Tensor
                    ) -> tuple[torch.Tensor, ...]:
        """``(p1, p2, z1, z2)`` in float32: each view's online prediction (from its clip embedding ``y``) and the
        target's projection of each view."""
        p1, p2 = self.predictor(self.projector(y1)), self.predictor(self.projector(y2))
        with torch.no_grad():
            z1 = self.target_projector(self.embed(v1, self.target_encoder))
            z2 = self.target_projector(self.embed(v2, self.target_encoder))
        return self.f32(p1, p2, z1, z2)

    @staticmethod
    def pair_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Each view's online prediction against the target's projection of the other view (BYOL, eq. 2
        symmetrised)."""
        return byol_loss(p1, z2) + byol_loss(p2, z1)

    def symmetric_loss(self, v1: torch.Tensor, v2: torch.Tensor, y1: torch.Tensor, y2: torch.Tensor) -> torch.Tensor:
        """:meth:`pair_loss` of :meth:`predictions`, in float32."""
        return self.pair_loss(*self.predictions(v1, v2, y1, y2))

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        v1, v2 = self.two_views(batch.waveforms)
        y1, y2 = self.embed(v1), self.embed(v2)
        return {"loss": self.symmetric_loss(v1, v2, y1, y2), "embeddings": y1.detach()}


OBJECTIVE = BYOL
