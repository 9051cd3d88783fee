"""Local Aggregation (Zhuang, Zhai & Yamins, 2019).

Each clip's embedding v_i (a linear projection, L2-normalised) is pulled toward its close neighbours C_i
and away from its background neighbours B_i: B_i are the ``background`` nearest entries of a memory
bank holding every clip's embedding; C_i are the clips sharing v_i's k-means cluster in any of
``clusterings`` runs (re-clustered each epoch). Loss -log P(C_i ∩ B_i | v_i) / P(B_i | v_i). The first
epoch uses C_i = {i} (instance recognition), as LA starts from an IR-trained network.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._faiss import kmeans
from ..losses.clustering import local_aggregation_loss
from ..nn.distributed import all_gather_cat, broadcast_, rank
from .base import Batch, Objective, TrainerView


class LocalAggregation(Objective):
    name = "local_aggregation"
    tiny_params: ClassVar[dict] = {"dim": 16, "background": 6, "clusters": 3, "clusterings": 2}
    n_crops = 1

    def __init__(self, encoder, frontend, views, dim: int = 128, background: int = 512, clusters: int = 200,
                 clusterings: int = 3, temperature: float = 0.07, bank_momentum: float = 0.5):
        super().__init__(encoder, frontend, views)
        self.projector = nn.Linear(encoder.embedding_dim, dim)
        self.kb, self.k, self.h = background, clusters, clusterings
        self.temperature, self.bank_momentum = temperature, bank_momentum
        self.register_buffer("memory", torch.zeros(0, dim))
        self.register_buffer("labels", torch.zeros(clusterings, 0, dtype=torch.long))
        self.register_buffer("use_clusters", torch.zeros((), dtype=torch.bool))
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def setup(self, n_clips: int) -> None:
        for key, need in (("clusters", self.k), ("background", self.kb)):  # k-means, and the neighbours drawn
            if n_clips < need:
                raise ValueError(f"objective_params.{key} ({need}) is more than the {n_clips} training clips: "
                                 f"--set objective_params.{key}=N with N below {n_clips}")
        self.memory = F.normalize(torch.randn(n_clips, self.memory.shape[1]), dim=1)
        self.labels = torch.zeros(self.h, n_clips, dtype=torch.long)

    def project(self, y: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector(y).float(), dim=1)

    @torch.no_grad()
    def on_epoch_start(self, epoch: int, trainer: TrainerView) -> None:
        # computed once on rank 0 and shared, so every rank keeps the same bank and clusters under DDP
        if epoch == 0:  # fill the memory bank with the initial network's embeddings
            if rank() == 0:
                feats = trainer.embed_clips(np.arange(trainer.n_clips)).float().to(self.memory.device)
                self.memory.copy_(self.project(feats))
            broadcast_(self.memory)
            return
        if rank() == 0:
            bank = self.memory.cpu().numpy()
            self.labels.copy_(torch.stack([torch.from_numpy(kmeans(bank, self.k, niter=20, seed=epoch * 100 + h)[0])
                                           for h in range(self.h)]).to(self.labels.device))
        broadcast_(self.labels)
        self.use_clusters.fill_(True)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.logmels(batch.waveforms)
        y = self.embed(self.views(x[:, 0]))
        v = self.project(y)
        ids = torch.as_tensor(batch.clips, device=v.device)
        sim = v @ self.memory.T / self.temperature
        kb = min(self.kb, sim.shape[1])
        background = torch.zeros_like(sim, dtype=torch.bool).scatter_(1, sim.detach().topk(kb, dim=1).indices, True)
        close = torch.zeros_like(background)
        rows = torch.arange(len(ids), device=v.device)
        close[rows, ids] = True
        background[rows, ids] = True
        if bool(self.use_clusters):
            own = self.labels[:, ids]  # (H, B)
            close |= (own[:, :, None] == self.labels[:, None, :]).any(dim=0)
        loss = local_aggregation_loss(sim, background, close)
        self._last = (ids, v.detach())
        return {"loss": loss, "embeddings": y.detach()}

    @torch.no_grad()
    def on_after_step(self, step: int, progress: float) -> None:
        if self._last is not None:
            ids, v = self._last
            ids, v = all_gather_cat(ids), all_gather_cat(v)  # every rank's clips update every rank's bank
            m = self.bank_momentum
            self.memory[ids] = F.normalize(m * self.memory[ids] + (1 - m) * v, dim=1)
            self._last = None


OBJECTIVE = LocalAggregation
