"""Temporal order: shuffled segments of a clip are restored to their order (jigsaw; Noroozi & Favaro, 2016
for images, applied to audio segments), or, with ``mode="binary"``, the model decides whether an order is
the right one (Misra et al., 2016).

Two guards against shortcuts, both off by default (the recipe of ``temporal_order-s.debian``):
``jitter_frames`` leaves random gaps between the segments (Noroozi & Favaro, 2016, sec. 3.2), so touching
edges cannot be matched; ``segment_gain_db`` shifts each segment's level by its own random gain, so the
loudness envelope of a sound (a loud attack, then decay) does not give the order away by itself.

``foreign_prob`` (off by default) swaps one segment of a clip, with that probability, for the same cell of
another clip in the batch; a second head names the foreign segment's position (or none), weighted by
``foreign_weight``. An order task inside one clip rewards only what changes over the clip; this term also
asks for what stays constant over it (see :func:`._segments.swap_in_foreign`).

``shift_weight`` (off by default) adds the band-shift term of ``byol_frames``: the segment in the first
shuffled position is shifted by a random whole number of mel bands (at most ``max_shift``; edges blanked
alike whatever the shift, :func:`._freqshift.shift_bands`), encoded once more, and a small head names the
shift from the two segment embeddings, as SPICE (Gfeller et al., 2020) names the transposition between two
copies of a spectrogram. Neither order nor foreign segment asks where in frequency a sound lies (the pitch
of a note); this term does, for a quarter more encoder work."""

from __future__ import annotations

import itertools
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..nn.heads import mlp
from ..nn.views import db_shift
from ._freqshift import BandShiftTerm
from ._segments import jittered_segments, swap_in_foreign
from .base import Batch, Objective


class TemporalOrder(BandShiftTerm, Objective):
    name = "temporal_order"
    tiny_params: ClassVar[dict] = {"segment_frames": 12, "hidden": 64}
    n_crops = 1

    def __init__(self, encoder, frontend, views, n_segments: int = 4, segment_frames: int = 50, hidden: int = 512,
                 mode: str = "jigsaw", jitter_frames: int = 0, segment_gain_db: float = 0.0,
                 foreign_prob: float = 0.0, foreign_weight: float = 1.0, shift_weight: float = 0.0,
                 max_shift: int = 4, shift_hidden: int = 256):
        super().__init__(encoder, frontend, views)
        if mode not in ("jigsaw", "binary"):
            raise ValueError(f"mode must be jigsaw or binary, got {mode!r}")
        if jitter_frames < 0 or segment_gain_db < 0:
            raise ValueError(f"jitter_frames and segment_gain_db must be >= 0, got {jitter_frames}, {segment_gain_db}")
        if not 0.0 <= foreign_prob <= 1.0 or foreign_weight < 0:
            raise ValueError(f"foreign_prob must be in [0, 1] and foreign_weight >= 0, got {foreign_prob}, "
                             f"{foreign_weight}")
        self.n, self.segment_frames, self.mode = n_segments, segment_frames, mode
        self.jitter_frames, self.segment_gain_db = jitter_frames, segment_gain_db
        self.foreign_prob, self.foreign_weight = foreign_prob, foreign_weight
        perms = torch.tensor(list(itertools.permutations(range(n_segments))))
        self.register_buffer("perms", perms, persistent=False)
        self.classifier = mlp(n_segments * encoder.embedding_dim, hidden, len(perms) if mode == "jigsaw" else 2)
        if foreign_prob:  # only then: checkpoints of runs without the term keep their keys
            self.foreign_head = mlp(n_segments * encoder.embedding_dim, hidden, n_segments + 1)
        self.init_shift(encoder, frontend, shift_weight, max_shift, shift_hidden)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.views(self.logmels(batch.waveforms)[:, 0])
        seg = jittered_segments(x, self.n, self.segment_frames, self.jitter_frames)
        b = seg.shape[0]
        if self.foreign_prob:
            seg, foreign = swap_in_foreign(seg, self.foreign_prob)
        if self.segment_gain_db:
            seg = seg + self.segment_gain(b, seg.device)
        # jigsaw: which permutation; binary: 1 = in order (permutation 0, the identity), 0 = any other order
        label = torch.randint(len(self.perms), (b,)) if self.mode == "jigsaw" else (torch.rand(b) < 0.5).long()
        perm_idx = label if self.mode == "jigsaw" else torch.where(
            label == 1, torch.zeros_like(label), torch.randint(1, len(self.perms), (b,)))
        label, perm_idx = label.to(x.device), perm_idx.to(x.device)
        order = self.perms[perm_idx]  # (B, n)
        shuffled = seg[torch.arange(b, device=x.device)[:, None], order]
        emb = self.embed(shuffled.reshape(b * self.n, *seg.shape[2:])).reshape(b, self.n, -1)
        logits = self.classifier(emb.reshape(b, -1)).float()
        loss = F.cross_entropy(logits, label)
        acc = (logits.argmax(1) == label).float().mean()
        out = {"loss": loss, "embeddings": emb[:, 0].detach(), "accuracy": acc}
        if self.foreign_prob or self.shift_weight:
            out["order_loss"] = loss.detach()
        if self.foreign_prob:
            target = foreign_position(foreign, order)
            f_logits = self.foreign_head(emb.reshape(b, -1)).float()
            f_loss = F.cross_entropy(f_logits, target)
            out.update(loss=loss + self.foreign_weight * f_loss,
                       foreign_loss=f_loss.detach(), foreign_accuracy=(f_logits.argmax(1) == target).float().mean())
        return self.add_shift_term(out, shuffled[:, 0], emb[:, 0])

    def segment_gain(self, b: int, device: torch.device) -> torch.Tensor:
        """(B, n, n_mels, 1) additive log-mel shifts: a uniform +-``segment_gain_db`` gain per segment, in the
        frontend's normalised units (as :meth:`Views.gain`)."""
        db = ((torch.rand(b, self.n, 1, 1) * 2 - 1) * self.segment_gain_db).to(device)
        return db_shift(db, self.views.std)


def foreign_position(foreign: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """The foreign head's target: 0 when no segment of the clip is foreign, else 1 + the position the foreign
    segment (cell ``foreign``) takes once shuffled by ``order`` (``shuffled[:, j] = seg[:, order[:, j]]``)."""
    pos = (order == foreign[:, None].clamp(min=0)).long().argmax(1)
    return torch.where(foreign < 0, torch.zeros_like(pos), pos + 1)


OBJECTIVE = TemporalOrder
