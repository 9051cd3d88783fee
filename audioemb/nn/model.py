"""The model that ships: waveform -> (clip embedding, frame embeddings, every layer's frames)."""

from __future__ import annotations

import torch
from torch import nn

from .encoders import Encoder, build_encoder
from .frontend import LogMel, LogMelConfig


class AudioEmbedder(nn.Module):
    """Frontend and encoder in one module, so that one ONNX file maps a waveform to an embedding.

    ``forward(wav)`` takes (batch, samples) float32 audio at ``sample_rate`` and returns
    ``(embedding, frames, layers)``: (B, D) pooled clip embeddings, (B, T, F) last-layer frames and
    (L, B, T, F) every layer's frames (for ``layer=`` selection at inference).
    """

    def __init__(self, frontend: LogMel, encoder: Encoder):
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder

    @classmethod
    def from_config(cls, frontend_cfg: dict, encoder_cfg: dict) -> AudioEmbedder:
        fcfg = {k: v for k, v in frontend_cfg.items() if k != "type"}
        if frontend_cfg.get("type", "logmel") != "logmel":
            raise ValueError(f"unknown frontend type {frontend_cfg.get('type')!r}")
        return cls(LogMel(LogMelConfig(**fcfg)), build_encoder(encoder_cfg))

    @property
    def sample_rate(self) -> int:
        return self.frontend.cfg.sample_rate

    @property
    def min_samples(self) -> int:
        """Shortest waveform that gives at least one output frame."""
        hop = self.frontend.cfg.hop_length
        return max(self.frontend.min_samples, self.encoder.min_frames() * hop)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        layers = self.encoder.hidden_states(self.frontend(wav))
        frames = layers[-1]
        return self.encoder.pool(frames), frames, torch.stack(layers, dim=0)
