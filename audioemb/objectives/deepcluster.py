"""DeepCluster (Caron et al., 2018): k-means pseudo-labels recomputed every epoch, a classification loss.

At each epoch start the training clips are embedded, PCA-whitened, clustered with faiss k-means, and the
classifier head is re-initialised (with its optimizer state). Clips are weighted by the inverse size of
their cluster, which stands in for the paper's uniform sampling over clusters.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._faiss import kmeans
from ..nn.distributed import broadcast_, broadcast_module_, rank
from ..nn.heads import mlp
from ._pca import pca_whiten
from .base import Batch, Objective, TrainerView


class DeepCluster(Objective):
    name = "deepcluster"
    tiny_params: ClassVar[dict] = {"clusters": 4, "hidden": 64, "proj_dim": 16, "pca_dim": 8}
    n_crops = 1

    def __init__(self, encoder, frontend, views, clusters: int = 256, hidden: int = 1024, proj_dim: int = 256,
                 pca_dim: int = 128):
        super().__init__(encoder, frontend, views)
        self.head = mlp(encoder.embedding_dim, hidden, proj_dim)
        self.classifier = nn.Linear(proj_dim, clusters)
        self.k, self.pca_dim = clusters, pca_dim
        self.register_buffer("labels", torch.zeros(0, dtype=torch.long))
        self.register_buffer("weights", torch.ones(clusters))

    def setup(self, n_clips: int) -> None:
        if n_clips < self.k:  # k-means cannot make more clusters than there are clips
            raise ValueError(f"objective_params.clusters ({self.k}) is more than the {n_clips} training clips: "
                             f"--set objective_params.clusters=N with N below {n_clips}")
        self.labels = torch.zeros(n_clips, dtype=torch.long)

    def on_epoch_start(self, epoch: int, trainer: TrainerView) -> None:
        # clustered once on rank 0 and shared, so every rank trains towards the same pseudo-labels under DDP
        if rank() == 0:
            feats = trainer.embed_clips(np.arange(trainer.n_clips)).float().numpy()
            labels, _ = kmeans(pca_whiten(feats, self.pca_dim), self.k, niter=20, seed=epoch)
            self.labels.copy_(torch.from_numpy(labels).to(self.labels.device))
        broadcast_(self.labels)
        counts = torch.bincount(self.labels, minlength=self.k).float()
        self.weights.copy_(torch.where(counts > 0, counts.sum() / (self.k * counts.clamp_min(1)), 0.0))
        self.classifier.reset_parameters()
        broadcast_module_(self.classifier)
        trainer.forget_optimizer_state(self.classifier.parameters())

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.logmels(batch.waveforms)
        y = self.embed(self.views(x[:, 0]))
        logits = self.classifier(self.head(y)).float()
        target = self.labels[torch.as_tensor(batch.clips, device=self.labels.device)]
        loss = F.cross_entropy(logits, target, weight=self.weights)
        return {"loss": loss, "embeddings": y.detach()}


OBJECTIVE = DeepCluster
