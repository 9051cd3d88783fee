"""CPC: Contrastive Predictive Coding (van den Oord, Li & Vinyals, 2018).

The encoder's conv latents z_t feed a causal (GRU) context network c_t; a linear W_k c_t scores the true
z_{t+k} (k = 1..K) against latents drawn from the same and other sequences of the batch with InfoNCE.

``shift_weight`` (off by default) adds the band-shift term of ``byol_frames`` (SPICE, Gfeller et al., 2020):
the view is shifted by a random whole number of mel bands, encoded once more, and a small head names the
shift from the two pooled contexts. CPC's InfoNCE rewards what tells recordings apart; the term asks the
encoder to keep where in frequency a sound lies (pitch), which the shipped CPC model had lost. Tried at weight
1, it brought pitch back to random weights' level and cost timbre and voice (docs/findings.md).

``augment_past`` (off by default) augments only what the context network reads, as in Kharitonov et al. (2021,
"Data augmenting contrastive learning of speech representations in the time domain"): the context comes from
the recipe's views of the crop (mixing, masks, gain), while the latents it must pick out, and the negatives,
come from the clean crop, so the context has to see through the augmentation to the clean future.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..losses.predictive import cpc_loss
from ._freqshift import BandShiftTerm
from .base import Batch, Objective


class CPC(BandShiftTerm, Objective):
    name = "cpc"
    tiny_params: ClassVar[dict] = {"steps": 3, "negatives": 4}
    tiny_encoder: ClassVar[dict] = {"type": "framenet", "dim": 32, "layers": 1, "heads": 2, "ff": 64, "channels": 16,
        "context": "gru", "causal": True}
    n_crops = 1

    def __init__(self, encoder, frontend, views, steps: int = 6, negatives: int = 16, shift_weight: float = 0.0,
                 max_shift: int = 4, shift_hidden: int = 256, augment_past: bool = False):
        super().__init__(encoder, frontend, views)
        if not getattr(encoder, "causal", False):
            raise ValueError("CPC needs a causal context (framenet with causal=true)")
        d = encoder.frame_dim
        self.predictors = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(steps))
        self.negatives = negatives
        self.augment_past = bool(augment_past)
        self.init_shift(encoder, frontend, shift_weight, max_shift, shift_hidden)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x, clean = self.view_and_clean(batch.waveforms)
        z = self.encoder.local_features(x)
        c = self.encoder.contextualize(z)[-1]
        targets = self.encoder.local_features(clean) if self.augment_past else z
        loss = cpc_loss(c, targets.float(), self.predictors, self.negatives)
        y = self.encoder.pool(c)
        return self.add_shift_term({"loss": loss, "embeddings": y.detach()}, x, y, own="cpc_loss")


OBJECTIVE = CPC
