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
