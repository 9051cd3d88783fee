"""SwAV (Caron et al., 2020): online clustering with Sinkhorn-Knopp, swapped prediction, multi-crop.

Each recording gives two large crops and ``n_small`` small crops (random ``small_frames``-frame windows
of further crops). Codes computed from each large crop are predicted from every other crop's prototype
scores. A queue of recent large-crop projections stabilises Sinkhorn with small batches.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.clustering import swapped_prediction_loss
from ..nn.heads import mlp
from .base import Batch, Objective


class SwAV(Objective):
    name = "swav"
    tiny_params: ClassVar[dict] = {"proj_dim": 16, "hidden": 64, "prototypes": 8, "n_small": 2, "small_frames": 20,
                                   "queue_size": 16, "queue_start": 0, "freeze_prototypes": 0, "epsilon": 0.5}
    ddp_unused_parameters = True  # the prototypes are frozen for the first steps

    def __init__(self, encoder, frontend, views, proj_dim: int = 128, hidden: int = 1024, prototypes: int = 256,
                 n_small: int = 4, small_frames: int = 40, temperature: float = 0.1, epsilon: float = 0.05,
                 sinkhorn_iterations: int = 3, queue_size: int = 1024, queue_start: int = 300,
                 freeze_prototypes: int = 200):
        super().__init__(encoder, frontend, views)
        self.n_crops = 2 + n_small
        self.projector = mlp(encoder.embedding_dim, hidden, proj_dim)
        self.prototypes = nn.Linear(proj_dim, prototypes, bias=False)
        self.small_frames, self.temperature, self.epsilon = small_frames, temperature, epsilon
        self.iterations, self.queue_start, self.freeze_prototypes = sinkhorn_iterations, queue_start, freeze_prototypes
        self.register_buffer("queue", torch.zeros(2, queue_size, proj_dim))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))

    def small_crop(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        if t <= self.small_frames:
            return x
        s = int(torch.randint(0, t - self.small_frames + 1, ()))
        return x[..., s:s + self.small_frames]

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        x = self.logmels(batch.waveforms)
        views = [self.views(x[:, 0]), self.views(x[:, 1])]
        views += [self.small_crop(self.views(x[:, v])) for v in range(2, x.shape[1])]
        ys = [self.embed(v) for v in views]
        zs = [F.normalize(self.projector(y).float(), dim=1) for y in ys]
        w = self.prototypes.weight.float()
        if batch.step < self.freeze_prototypes:
            w = w.detach()
        scores = [z @ w.T for z in zs]
        queue_scores = None
        if batch.step >= self.queue_start and int(self.queue_filled) >= self.queue.shape[1]:
            queue_scores = [self.queue[i] @ w.detach().T for i in range(2)]
        loss = swapped_prediction_loss(scores, 2, self.temperature, self.epsilon, self.iterations, queue_scores)
        with torch.no_grad():
            b = len(zs[0])
            self.queue[:, b:] = self.queue[:, :-b].clone()
            self.queue[0, :b], self.queue[1, :b] = zs[0].detach(), zs[1].detach()
            self.queue_filled.add_(b)
        return {"loss": loss, "embeddings": ys[0].detach()}


OBJECTIVE = SwAV
