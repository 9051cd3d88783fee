"""Audio2Vec, CBoW variant (Tagliasacchi et al., 2019): reconstruct a middle segment's log-mel from the
embeddings of the segments around it (mean of the context embeddings, an MLP decoder, MSE loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nn.heads import mlp
from ._segments import Audio2Vec
from .base import Batch


class Audio2VecCBoW(Audio2Vec):
    name = "audio2vec_cbow"

    def __init__(self, encoder, frontend, views, context: int = 2, segment_frames: int = 40, hidden: int = 1024):
        super().__init__(encoder, frontend, views, context, segment_frames)
        self.decoder = mlp(encoder.embedding_dim, hidden, frontend.cfg.n_mels * segment_frames)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        seg = self.segments_of(batch)  # (B, n, M, F)
        b, n = seg.shape[:2]
        around = torch.cat([seg[:, : self.context], seg[:, self.context + 1:]], dim=1)
        emb = self.embed(around.reshape(b * (n - 1), *seg.shape[2:])).reshape(b, n - 1, -1)
        pred = self.decoder(emb.mean(dim=1))
        loss = F.mse_loss(*self.f32(pred, seg[:, self.context].reshape(b, -1)))
        return {"loss": loss, "embeddings": emb[:, 0].detach()}


OBJECTIVE = Audio2VecCBoW
