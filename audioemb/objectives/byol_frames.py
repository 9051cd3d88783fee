"""BYOL with a frame-level masked-prediction term: clip invariance plus the spectral detail of each frame.

BYOL (Grill et al., 2020) with BYOL-A views (Niizumi et al., 2021) learns what stays the same between two
crops of a recording; on its own it discards pitch (see docs/findings.md). Here the online encoder also sees
its first view with random spans of output frames masked (zeroed), and a linear head reconstructs the log-mel
frames under every masked output frame from the encoder's frames (L1), in the spirit of the predictive
objectives that keep pitch: NPC (Liu et al., 2021) predicts a frame from a context that excludes it, MPC
(Jiang et al., 2019) reconstructs masked spans. Loss: BYOL + ``frame_weight`` x masked L1.

With ``shift_weight`` > 0 a third term asks for where in frequency a sound lies (pitch, for a note): the
second view is shifted by a random whole number of mel bands (at most ``max_shift``, edges blanked alike
whatever the shift; :func:`._freqshift.shift_bands`), encoded once more by the online encoder, and a small
head names the shift from the two clip embeddings (cross-entropy), as SPICE (Gfeller et al., 2020) asks a
network for the transposition between two copies of a spectrogram. The shifted copy takes no part in the
BYOL term, which would otherwise teach invariance to the shift.

With ``nce_weight`` > 0 a fourth term sets the clips of a batch apart, which BYOL's regression never asks for:
InfoNCE (van den Oord et al., 2018) between each view's online prediction and the target's projection of the
other view, the batch's other clips as negatives (in-batch, as MoCo v3, Chen et al., 2021), temperature
``nce_tau``. What differs between clips and stays within one (the speaker, the sound source) is what it rewards.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..losses.contrastive import info_nce_loss
from ..losses.predictive import frame_blocks, masked_l1_loss
from ._freqshift import BandShiftTerm
from ._masking import output_frame_mask
from .base import Batch
from .byol import BYOL


class BYOLFrames(BandShiftTerm, BYOL):
    name = "byol_frames"
    tiny_params: ClassVar[dict] = {"proj_dim": 32, "hidden": 64, "mask_ratio": 0.3}

    def __init__(self, encoder, frontend, views, proj_dim: int = 256, hidden: int = 1024,
                 base_momentum: float = 0.99, frame_weight: float = 1.0, mask_ratio: float = 0.2, span: int = 2,
                 shift_weight: float = 0.0, max_shift: int = 4, shift_hidden: int = 256,
                 nce_weight: float = 0.0, nce_tau: float = 0.2):
        super().__init__(encoder, frontend, views, proj_dim, hidden, base_momentum)
        self.frame_head = nn.Linear(encoder.frame_dim, encoder.frame_hop * frontend.cfg.n_mels)
        self.frame_weight, self.mask_ratio, self.span = frame_weight, mask_ratio, span
        if nce_weight < 0 or nce_tau <= 0:
            raise ValueError(f"nce_weight must be >= 0 and nce_tau > 0, not {nce_weight} and {nce_tau}")
        self.nce_weight, self.nce_tau = nce_weight, nce_tau
        self.init_shift(encoder, frontend, shift_weight, max_shift, shift_hidden)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        v1, v2 = self.two_views(batch.waveforms)
        sel, frame_sel = output_frame_mask(v1, self.encoder.frame_hop, self.mask_ratio, self.span)
        f1, f2 = self.encoder(v1.masked_fill(frame_sel[:, None, :], 0.0)), self.encoder(v2)
        y1, y2 = self.encoder.pool(f1), self.encoder.pool(f2)
        p1, p2, z1, z2 = self.predictions(v1, v2, y1, y2)
        clip_loss = self.pair_loss(p1, p2, z1, z2)
        target = frame_blocks(v1, self.encoder.frame_hop)[:, : f1.shape[1]]
        frame_loss = masked_l1_loss(*self.f32(self.frame_head(f1), target), sel[:, : f1.shape[1]])
        out = {"loss": clip_loss + self.frame_weight * frame_loss, "embeddings": y2.detach(),
               "clip_loss": clip_loss.detach(), "frame_loss": frame_loss.detach()}
        if self.nce_weight > 0:
            nce = info_nce_loss(p1, z2, temperature=self.nce_tau) + info_nce_loss(p2, z1, temperature=self.nce_tau)
            out["loss"] = out["loss"] + self.nce_weight * nce
            out["nce_loss"] = nce.detach()
        return self.add_shift_term(out, v2, y2)


OBJECTIVE = BYOLFrames
