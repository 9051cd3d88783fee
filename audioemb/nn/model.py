"""The model that ships: waveform -> (clip embedding, frame embeddings, every layer's frames)."""

from __future__ import annotations

import torch
from torch import nn

from .embed_norm import STANDARDIZE, EmbeddingStandardizer
from .encoders import Encoder, build_encoder
from .frontend import LogMel, LogMelConfig


class AudioEmbedder(nn.Module):
    """Frontend and encoder in one module, so that one ONNX file maps a waveform to an embedding.

    ``forward(wav)`` takes (batch, samples) float32 audio at ``sample_rate`` and returns
    ``(embedding, frames, layers)``: (B, D) pooled clip embeddings, (B, T, F) last-layer frames and
    (L, B, T, F) every layer's frames (for ``layer=`` selection at inference). With ``embed_norm`` (an
    :class:`~audioemb.nn.embed_norm.EmbeddingStandardizer`) the pooled embedding is standardised; frames and
    layers are not.
    """

    def __init__(self, frontend: LogMel, encoder: Encoder, embed_norm: EmbeddingStandardizer | None = None):
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder
        self.embed_norm = embed_norm

    @classmethod
    def from_config(cls, frontend_cfg: dict, encoder_cfg: dict, embedding_norm: dict | None = None) -> AudioEmbedder:
        """Built from a config's ``frontend``, ``encoder`` and optional ``embedding_norm`` (whose statistics the
        weights file then holds)."""
        fcfg = {k: v for k, v in frontend_cfg.items() if k != "type"}
        if frontend_cfg.get("type", "logmel") != "logmel":
            raise ValueError(f"unknown frontend type {frontend_cfg.get('type')!r}")
        encoder = build_encoder(encoder_cfg)
        norm = None
        if embedding_norm:
            if embedding_norm.get("type") != STANDARDIZE:
                raise ValueError(f"unknown embedding_norm type {embedding_norm.get('type')!r}")
            norm = EmbeddingStandardizer(encoder.embedding_dim)
        return cls(LogMel(LogMelConfig(**fcfg)), encoder, norm)

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
        emb = self.encoder.pool(frames)
        if self.embed_norm is not None:
            emb = self.embed_norm(emb)
        return emb, frames, torch.stack(layers, dim=0)
