"""The contract every encoder keeps: log-mel in, frame embeddings out, and a fixed pooling to a clip."""

from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """(batch, n_mels, frames) normalised log-mel -> (batch, frames', frame_dim) frame embeddings.

    Subclasses set ``frame_hop`` (log-mel frames per output frame), ``frame_dim``, ``n_layers`` and
    implement :meth:`hidden_states`. The clip embedding is :meth:`pool` of the frames: the mean and the
    max over time, concatenated (BYOL-A v2 style), so ``embedding_dim == 2 * frame_dim``.
    """

    frame_hop: int = 1
    frame_dim: int = 0
    n_layers: int = 1

    def config(self) -> dict:  # the kwargs that rebuild this encoder
        raise NotImplementedError

    def inference_parameters(self) -> int:
        """Parameters the embedding is computed with (all of them unless a readout leaves some out)."""
        return sum(p.numel() for p in self.parameters())

    def hidden_states(self, logmel: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's output, each (batch, frames', frame_dim); the last one is the frame embedding."""
        raise NotImplementedError

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.hidden_states(logmel)[-1]

    @property
    def embedding_dim(self) -> int:
        return 2 * self.frame_dim

    @staticmethod
    def pool(frames: torch.Tensor) -> torch.Tensor:
        """Clip embedding: concat(mean over time, max over time), (batch, 2 * frame_dim)."""
        return torch.cat([frames.mean(dim=1), frames.amax(dim=1)], dim=-1)

    def min_frames(self) -> int:
        """Shortest log-mel input (in frames) that yields at least one output frame."""
        return self.frame_hop
