"""wav2vec 2.0-style masked contrastive prediction (Baevski et al., 2020), on log-mel conv latents.

Spans of the latents z are replaced by a learned mask embedding; a bidirectional transformer context must
identify each masked step's true latent (through a linear projection) among distractors from other steps of
the same sequence (cosine similarity, temperature 0.1). The targets are the plain, unquantised latents by
default; ``quantize=True`` makes them the paper's: a product quantiser of G codebooks × V entries picked by a
straight-through Gumbel softmax (:class:`GumbelQuantizer`), its temperature annealed from 2 to 0.5 over the
run, with the diversity loss (eq. 4) weighted by ``diversity_weight``. ``distractors_from="batch"`` draws
the distractors from every clip of the batch instead, and ``"both"`` half from the same clip and half from
other clips of the batch (neither is the paper's). ``augment_context=True`` applies the recipe's views only to
what the context reads; the targets and distractors are the clean crop's latents (past-only augmentation,
Kharitonov et al., 2021, as ``cpc``'s ``augment_past``). ``shift_weight`` > 0 adds the band-shift term of
``byol_frames`` (SPICE, Gfeller et al., 2020): the context's input shifted by a random whole number of mel
bands goes through the same mask and context once more, and a small head names the shift from the two pooled
contexts, so that the encoder keeps the pitch that the contrastive task lets it discard.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.predictive import codebook_diversity_loss, masked_contrastive_loss, span_mask
from ._freqshift import BandShiftTerm
from .base import Batch, Objective


class GumbelQuantizer(nn.Module):
    """wav2vec 2.0's product quantiser (Baevski et al., 2020, section 3.2): each of ``groups`` codebooks of
    ``entries`` vectors (``dim // groups`` wide) gets one pick per step, by a Gumbel softmax that is hard
    (one-hot) forwards and soft backwards while training and by argmax otherwise; the picks are concatenated.
    The temperature ``tau`` is a buffer, so a resumed run continues its schedule."""

    def __init__(self, in_dim: int, dim: int, groups: int = 2, entries: int = 320, tau: float = 2.0):
        super().__init__()
        if dim % groups:
            raise ValueError(f"the quantised width {dim} must be a multiple of the {groups} codebooks")
        self.groups, self.entries = groups, entries
        self.logits = nn.Linear(in_dim, groups * entries)
        nn.init.normal_(self.logits.weight, std=1.0)
        nn.init.zeros_(self.logits.bias)
        self.codebooks = nn.Parameter(torch.rand(groups, entries, dim // groups))
        self.register_buffer("tau", torch.tensor(float(tau)))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, in_dim) latents -> (B, T, dim) quantised vectors and (B·T, groups, entries) softmax probabilities."""
        b, t, _ = z.shape
        logits = self.logits(z).float().reshape(b * t, self.groups, self.entries)
        probs = logits.softmax(-1)
        if self.training:
            pick = F.gumbel_softmax(logits, tau=float(self.tau), hard=True)
        else:
            pick = F.one_hot(logits.argmax(-1), self.entries).to(logits.dtype)
        q = torch.einsum("ngv,gvd->ngd", pick, self.codebooks.float())
        return q.reshape(b, t, -1), probs


class Wav2Vec2(BandShiftTerm, Objective):
    name = "wav2vec2"
    tiny_params: ClassVar[dict] = {"span": 2, "distractors": 4, "proj_dim": 16}
    tiny_encoder: ClassVar[dict] = {"type": "framenet", "dim": 32, "layers": 1, "heads": 2, "ff": 64, "channels": 16}
    n_crops = 1

    def __init__(self, encoder, frontend, views, ratio: float = 0.4, span: int = 3, distractors: int = 10,
                 temperature: float = 0.1, proj_dim: int = 128, distractors_from: str = "clip",
                 quantize: bool = False, codebooks: int = 2, codewords: int = 320, diversity_weight: float = 0.1,
                 tau: tuple[float, float] | list[float] = (2.0, 0.5), augment_context: bool = False,
                 shift_weight: float = 0.0, max_shift: int = 4, shift_hidden: int = 256):
        super().__init__(encoder, frontend, views)
        self.augment_context = bool(augment_context)
        if distractors_from not in ("clip", "batch", "both"):
            raise ValueError("distractors_from must be 'clip' (the paper's), 'batch' or 'both', "
                             f"not {distractors_from!r}")
        self.across_batch = distractors_from == "batch"
        self.from_other_clips = distractors // 2 if distractors_from == "both" else 0
        d = encoder.frame_dim
        self.mask_embedding = nn.Parameter(torch.randn(d) * 0.1)
        self.diversity_weight, self.tau_range = diversity_weight, (float(tau[0]), float(tau[1]))
        self.quantizer = GumbelQuantizer(d, proj_dim, codebooks, codewords, tau[0]) if quantize else None
        self.project_q = nn.Linear(proj_dim if quantize else d, proj_dim)
        self.project_c = nn.Linear(d, proj_dim)
        self.ratio, self.span, self.distractors, self.temperature = ratio, span, distractors, temperature
        self.init_shift(encoder, frontend, shift_weight, max_shift, shift_hidden)

    def masked_context(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The context's last layer over conv latents ``z`` (B, T, D) with the ``mask``ed steps replaced by
        the mask embedding."""
        zm = torch.where(mask[..., None], self.mask_embedding.to(z.dtype), z)
        return self.encoder.contextualize(zm)[-1]

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        x, clean = self.view_and_clean(batch.waveforms)
        z = self.encoder.local_features(x)
        mask = span_mask(z.shape[0], z.shape[1], self.ratio, self.span).to(z.device)
        c = self.masked_context(z, mask)
        zt = self.encoder.local_features(clean) if self.augment_context else z  # targets and distractors
        if self.quantizer is None:
            targets = self.project_q(zt)
        else:
            q, probs = self.quantizer(zt)
            targets = self.project_q(q)
        loss = masked_contrastive_loss(*self.f32(self.project_c(c), targets), mask, self.distractors,
                                       self.temperature, across_batch=self.across_batch,
                                       from_other_clips=self.from_other_clips)
        y = self.encoder.pool(c)
        out = {"loss": loss, "embeddings": y.detach()}
        if self.quantizer is not None:
            diversity = codebook_diversity_loss(probs)
            out.update(loss=loss + self.diversity_weight * diversity, contrastive_loss=loss.detach(),
                       diversity_loss=diversity.detach(), tau=self.quantizer.tau.detach().clone())

        def embed_shifted(xs: torch.Tensor) -> torch.Tensor:  # the same mask, so only the shift differs
            return self.encoder.pool(self.masked_context(self.encoder.local_features(xs), mask))

        return self.add_shift_term(out, x, y, own="wav2vec2_loss", embed=embed_shifted)

    def on_after_step(self, step: int, progress: float) -> None:
        """The EMA hooks of the base class, and the quantiser's temperature: exponential from tau[0] to tau[1]."""
        super().on_after_step(step, progress)
        if self.quantizer is not None:
            hi, lo = self.tau_range
            self.quantizer.tau.fill_(hi * (lo / hi) ** min(max(progress, 0.0), 1.0))


OBJECTIVE = Wav2Vec2
