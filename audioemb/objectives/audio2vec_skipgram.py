"""Audio2Vec, skip-gram variant (Tagliasacchi et al., 2019): reconstruct each surrounding segment's log-mel
from the middle segment's embedding (one MLP decoder per offset, MSE loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.heads import mlp
from ._segments import Audio2Vec
from .base import Batch


class Audio2VecSkipGram(Audio2Vec):
    name = "audio2vec_skipgram"

    def __init__(self, encoder, frontend, views, context: int = 2, segment_frames: int = 40, hidden: int = 512):
        super().__init__(encoder, frontend, views, context, segment_frames)
        self.decoders = nn.ModuleList(mlp(encoder.embedding_dim, hidden, frontend.cfg.n_mels * segment_frames)
                                      for _ in range(2 * context))

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        seg = self.segments_of(batch)
        b, n = seg.shape[:2]
        emb = self.embed(seg[:, self.context])
        targets = [seg[:, i] for i in range(n) if i != self.context]
        loss = sum(F.mse_loss(*self.f32(dec(emb), t.reshape(b, -1))) for dec, t in zip(self.decoders, targets))
        return {"loss": loss / len(targets), "embeddings": emb.detach()}


OBJECTIVE = Audio2VecSkipGram
