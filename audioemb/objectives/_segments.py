"""Cutting a log-mel crop into consecutive segments (Audio2Vec, temporal order)."""

from __future__ import annotations

import torch


def segments(x: torch.Tensor, n: int, frames: int) -> torch.Tensor:
    """(B, n_mels, T) -> (B, n, n_mels, frames): ``n`` consecutive non-overlapping segments from the start."""
    if x.shape[-1] < n * frames:
        raise ValueError(f"need {n * frames} log-mel frames, got {x.shape[-1]}; use a longer crop_s")
    return torch.stack([x[..., i * frames:(i + 1) * frames] for i in range(n)], dim=1)
