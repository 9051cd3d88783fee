"""wav2vec 2.0-style masked contrastive prediction (Baevski et al., 2020), on log-mel conv latents.

Spans of the latents z are replaced by a learned mask embedding; a bidirectional transformer context must
identify each masked step's true latent (plain, unquantised, through a linear projection) among
distractors from other steps of the same sequence (cosine similarity, temperature 0.1).
``distractors_from="batch"`` draws them from every clip of the batch instead, and ``"both"`` half from the
same clip and half from other clips of the batch (neither is the paper's).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..losses.predictive import masked_contrastive_loss, span_mask
from .base import Batch, Objective


class Wav2Vec2(Objective):
    name = "wav2vec2"
    tiny_params: ClassVar[dict] = {"span": 2, "distractors": 4, "proj_dim": 16}
    tiny_encoder: ClassVar[dict] = {"type": "framenet", "dim": 32, "layers": 1, "heads": 2, "ff": 64, "channels": 16}
    n_crops = 1

    def __init__(self, encoder, frontend, views, ratio: float = 0.4, span: int = 3, distractors: int = 10,
                 temperature: float = 0.1, proj_dim: int = 128, distractors_from: str = "clip"):
        super().__init__(encoder, frontend, views)
        if distractors_from not in ("clip", "batch", "both"):
            raise ValueError("distractors_from must be 'clip' (the paper's), 'batch' or 'both', "
                             f"not {distractors_from!r}")
        self.across_batch = distractors_from == "batch"
        self.from_other_clips = distractors // 2 if distractors_from == "both" else 0
        d = encoder.frame_dim
        self.mask_embedding = nn.Parameter(torch.randn(d) * 0.1)
        self.project_q = nn.Linear(d, proj_dim)
        self.project_c = nn.Linear(d, proj_dim)
        self.ratio, self.span, self.distractors, self.temperature = ratio, span, distractors, temperature

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.views(self.logmels(batch.waveforms)[:, 0])
        z = self.encoder.local_features(x)
        mask = span_mask(z.shape[0], z.shape[1], self.ratio, self.span).to(z.device)
        zm = torch.where(mask[..., None], self.mask_embedding.to(z.dtype), z)
        c = self.encoder.contextualize(zm)[-1]
        loss = masked_contrastive_loss(*self.f32(self.project_c(c), self.project_q(z)), mask, self.distractors,
                                       self.temperature, across_batch=self.across_batch,
                                       from_other_clips=self.from_other_clips)
        return {"loss": loss, "embeddings": self.encoder.pool(c).detach()}


OBJECTIVE = Wav2Vec2
