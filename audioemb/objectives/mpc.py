"""MPC: Masked Predictive Coding (Jiang et al., 2019), BERT-style and bidirectional.

Spans of output frames are selected (about ``ratio`` of them); their log-mel frames are zeroed (80 %),
replaced by other frames of the batch (10 %) or left unchanged (10 %), and a bidirectional transformer
reconstructs the selected frames (L1 loss on the selected positions only).

``shift_weight`` (off by default) adds the band-shift term of ``byol_frames`` (SPICE, Gfeller et al., 2020)
on the corrupted input: a copy shifted by a random whole number of mel bands is encoded once more, and a
small head names the shift from the two pooled outputs (tried at weight 1: worse but for pitch, docs/findings.md).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..losses.predictive import frame_blocks, masked_l1_loss
from ._freqshift import BandShiftTerm
from ._masking import output_frame_mask
from .base import Batch, Objective


class MPC(BandShiftTerm, Objective):
    name = "mpc"
    tiny_params: ClassVar[dict] = {"ratio": 0.3, "span": 2}
    tiny_encoder: ClassVar[dict] = {"type": "framenet", "dim": 32, "layers": 1, "heads": 2, "ff": 64, "channels": 16}
    n_crops = 1

    def __init__(self, encoder, frontend, views, ratio: float = 0.15, span: int = 3, shift_weight: float = 0.0,
                 max_shift: int = 4, shift_hidden: int = 256):
        super().__init__(encoder, frontend, views)
        self.ratio, self.span = ratio, span
        self.head = nn.Linear(encoder.frame_dim, encoder.frame_hop * frontend.cfg.n_mels)
        self.init_shift(encoder, frontend, shift_weight, max_shift, shift_hidden)

    def corrupt(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(corrupted log-mel, (B, T') mask of selected output frames)."""
        hop = self.encoder.frame_hop
        b, _, t = x.shape
        sel, frame_sel = output_frame_mask(x, hop, self.ratio, self.span)
        action = torch.rand(b, t // hop).to(x.device).repeat_interleave(hop, dim=1)
        action = torch.cat([action, action.new_ones(b, t - action.shape[1])], dim=1)
        out = x.clone()
        zero = frame_sel & (action < 0.8)
        swap = frame_sel & (action >= 0.8) & (action < 0.9)
        out = out.masked_fill(zero[:, None, :], 0.0)
        donor = x.roll(1, dims=0).roll(int(torch.randint(1, max(2, t), ())), dims=2)
        out = torch.where(swap[:, None, :], donor, out)
        return out, sel

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.views(self.logmels(batch.waveforms)[:, 0])
        corrupted, sel = self.corrupt(x)
        frames = self.encoder(corrupted)
        target = frame_blocks(x, self.encoder.frame_hop)[:, : frames.shape[1]]
        loss = masked_l1_loss(*self.f32(self.head(frames), target), sel[:, : frames.shape[1]])
        y = self.encoder.pool(frames)
        return self.add_shift_term({"loss": loss, "embeddings": y.detach()}, corrupted, y, own="mpc_loss")


OBJECTIVE = MPC
