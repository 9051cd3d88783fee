"""MoCo v2 (He et al., 2020; Chen et al., 2020): a queue of negative keys from a momentum encoder.

The key encoder follows theta_k <- m theta_k + (1 - m) theta_q with m = 0.999; the head is a 2-layer MLP.
Each query is scored against its key (another crop of the same recording) and the queue's keys with InfoNCE.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from ..losses.contrastive import info_nce_loss
from ..nn.distributed import all_gather_cat
from ..nn.heads import mlp
from .base import Batch, Objective, frozen_copy


class MoCoV2(Objective):
    name = "moco_v2"
    tiny_params: ClassVar[dict] = {"proj_dim": 32, "hidden": 64, "queue_size": 64, "momentum": 0.9}

    def __init__(self, encoder, frontend, views, proj_dim: int = 128, hidden: int = 1024, queue_size: int = 4096,
                 temperature: float = 0.2, momentum: float = 0.999, symmetric: bool = True):
        super().__init__(encoder, frontend, views)
        self.projector = mlp(encoder.embedding_dim, hidden, proj_dim, batch_norm=False)
        self.key_encoder = frozen_copy(encoder)
        self.key_projector = frozen_copy(self.projector)
        self.temperature, self.m, self.symmetric = temperature, momentum, symmetric
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._keys: torch.Tensor | None = None

    def momentum(self, progress: float) -> float:
        return self.m  # constant, as in MoCo

    def momentum_pairs(self):
        return [(self.encoder, self.key_encoder), (self.projector, self.key_projector)]

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        v1, v2 = self.two_views(batch.waveforms)
        y1 = self.embed(v1)
        q1 = self.projector(y1)
        with torch.no_grad():
            k2 = self.key_projector(self.embed(v2, self.key_encoder))
        (q1, k2), queue = self.f32(q1, k2), self.queue.clone().detach()
        loss = info_nce_loss(q1, k2, queue, self.temperature)
        keys = [k2]
        if self.symmetric:
            q2 = self.projector(self.embed(v2)).float()
            with torch.no_grad():
                k1 = self.key_projector(self.embed(v1, self.key_encoder)).float()
            loss = (loss + info_nce_loss(q2, k1, queue, self.temperature)) / 2
            keys.append(k1)
        self._keys = F.normalize(torch.cat(keys), dim=1).detach()
        return {"loss": loss, "embeddings": y1.detach()}

    @torch.no_grad()
    def on_after_step(self, step: int, progress: float) -> None:
        super().on_after_step(step, progress)
        if self._keys is not None:  # under DDP every rank enqueues every rank's keys, in rank order
            self.enqueue(all_gather_cat(self._keys))
            self._keys = None

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest keys in the ring buffer with ``keys``."""
        n, size = len(keys), len(self.queue)
        idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % size
        self.queue[idx] = keys[-size:] if n > size else keys
        self.queue_ptr.copy_((self.queue_ptr + n) % size)


OBJECTIVE = MoCoV2
