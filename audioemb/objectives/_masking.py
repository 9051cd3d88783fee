"""Masks over output frames, spread to the log-mel frames under them (MPC, BYOL + masked frames)."""

from __future__ import annotations

import torch

from ..losses.predictive import span_mask


def output_frame_mask(x: torch.Tensor, hop: int, ratio: float, span: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For log-mel ``x`` (B, n_mels, T): ((B, T // hop) mask of output frames in random spans covering about
    ``ratio`` of them, (B, T) the same mask on log-mel frames, false past the last whole output frame)."""
    b, _, t = x.shape
    sel = span_mask(b, t // hop, ratio, span).to(x.device)
    frame_sel = sel.repeat_interleave(hop, dim=1)
    return sel, torch.cat([frame_sel, frame_sel.new_zeros(b, t - frame_sel.shape[1])], dim=1)
