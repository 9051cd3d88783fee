"""Cutting a log-mel crop into consecutive segments (Audio2Vec, temporal order), and Audio2Vec's shared base."""

from __future__ import annotations

from typing import ClassVar

import torch

from .base import Batch, Objective


def segments(x: torch.Tensor, n: int, frames: int) -> torch.Tensor:
    """(B, n_mels, T) -> (B, n, n_mels, frames): ``n`` consecutive non-overlapping segments from the start."""
    if x.shape[-1] < n * frames:
        raise ValueError(f"need {n * frames} log-mel frames, got {x.shape[-1]}; use a longer crop_s")
    return torch.stack([x[..., i * frames:(i + 1) * frames] for i in range(n)], dim=1)


def jittered_segments(x: torch.Tensor, n: int, frames: int, jitter: int) -> torch.Tensor:
    """(B, n_mels, T) -> (B, n, n_mels, frames): segment ``i`` of each clip starts at a random offset in
    ``[0, jitter]`` within its cell ``[i * (frames + jitter), (i + 1) * (frames + jitter))``, so neighbours are
    0 to ``2 * jitter`` frames apart: the random gaps of Noroozi & Favaro (2016, sec. 3.2), which keep the
    jigsaw from being solved by matching the edges of touching pieces. ``jitter=0`` is :func:`segments`."""
    if not jitter:
        return segments(x, n, frames)  # draws nothing: the random stream of a run without gaps is unchanged
    cell = frames + jitter
    if x.shape[-1] < n * cell:
        raise ValueError(f"need {n * cell} log-mel frames, got {x.shape[-1]}; use a longer crop_s")
    b, m, _ = x.shape
    start = torch.arange(n, device=x.device) * cell + torch.randint(jitter + 1, (b, n)).to(x.device)
    idx = (start[..., None] + torch.arange(frames, device=x.device))[:, :, None, :].expand(b, n, m, frames)
    return torch.gather(x[:, None].expand(b, n, m, x.shape[-1]), 3, idx)


def swap_in_foreign(seg: torch.Tensor, prob: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace, in each clip with probability ``prob``, one segment at random by the segment in the same cell
    of the next clip in the batch (a circular shift). Returns the segments and, per clip, which one is foreign
    (``-1``: none). Telling the foreign segment apart takes what stays constant over a clip (a voice, an
    instrument, a recording chain), which an order task inside one clip does not reward: segments of other
    clips as negatives, as in Jansen et al. (2018, temporal proximity) and wav2vec 2.0's batch distractors.
    With ``TrainConfig.pair_clips`` the next clip of clip ``2k`` is one of its group (the same voice or
    instrument program): half the swaps are then hard negatives, the other half random ones."""
    b, n = seg.shape[:2]
    if b < 2:
        raise ValueError("a foreign segment needs at least 2 clips per batch")
    swap = torch.rand(b) < prob
    which = torch.randint(n, (b,))
    foreign = torch.where(swap, which, torch.full_like(which, -1)).to(seg.device)
    rows = torch.nonzero(swap).squeeze(1).to(seg.device)
    if not len(rows):
        return seg, foreign
    out = seg.clone()
    out[rows, foreign[rows]] = seg[(rows + 1) % b, foreign[rows]]
    return out, foreign


class Audio2Vec(Objective):
    """Audio2Vec (Tagliasacchi et al., 2020): ``2 * context + 1`` consecutive segments of one augmented crop;
    the CBoW and skip-gram variants differ only in which segments predict which."""

    tiny_params: ClassVar[dict] = {"segment_frames": 10, "hidden": 64}
    n_crops = 1

    def __init__(self, encoder, frontend, views, context: int, segment_frames: int):
        super().__init__(encoder, frontend, views)
        self.context, self.segment_frames = context, segment_frames

    def segments_of(self, batch: Batch) -> torch.Tensor:
        """(B, 2 * context + 1, n_mels, segment_frames) segments of the batch's augmented first crops."""
        x = self.views(self.logmels(batch.waveforms)[:, 0])
        return segments(x, 2 * self.context + 1, self.segment_frames)
