"""FrameNet: a conv feature extractor and a small context network (transformer or GRU) over frames.

The frame-level encoder that sequence objectives (APC, MPC, CPC, wav2vec 2.0-style) need. The conv stack
turns log-mel into local latents ``z`` at 25 frames per second (hop 4); the context network turns them
into contextual frames ``c``. ``causal=True`` makes the context look only at the past (APC, CPC).
``readout="latents"`` makes the conv latents the model's frames and clip embedding (an inference readout,
set by ``audioemb export --from MODEL --readout latents``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import Encoder

READOUTS = ("context", "latents")


class ConvFeatures(nn.Module):
    """(B, n_mels, T) -> (B, T/4, dim): three 3x3 conv blocks pooling frequency by 8 and time by 4."""

    def __init__(self, n_mels: int, dim: int, channels: int = 64):
        super().__init__()
        c1 = channels // 2

        def block(cin: int, cout: int, pool: tuple[int, int]) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d(pool, pool))

        self.convs = nn.Sequential(block(1, c1, (2, 2)), block(c1, channels, (2, 2)), block(channels, channels, (2, 1)))
        self.proj = nn.Linear(channels * (n_mels // 8), dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = self.convs(logmel.unsqueeze(1))
        b, c, f, t = x.shape
        return self.norm(self.proj(x.permute(0, 3, 1, 2).reshape(b, t, c * f)))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, causal: bool):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d // self.heads)
        if self.causal:
            future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            att = att.masked_fill(future, float("-inf"))
        y = torch.matmul(att.softmax(dim=-1), v)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer."""

    def __init__(self, dim: int, heads: int, ff: int, dropout: float, causal: bool):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.att = SelfAttention(dim, heads, causal)
        self.ff = nn.Sequential(nn.Linear(dim, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.att(self.n1(x)))
        return x + self.drop(self.ff(self.n2(x)))


class ConvPosition(nn.Module):
    """Relative position by a grouped 1-D convolution over time (wav2vec 2.0); left-padded when causal."""

    def __init__(self, dim: int, kernel: int = 17, groups: int = 16, causal: bool = False):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, groups=groups)
        self.pad = (kernel - 1, 0) if causal else ((kernel - 1) // 2, kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.pad(x.transpose(1, 2), self.pad))
        return x + F.gelu(y).transpose(1, 2)


class FrameNet(Encoder):
    """Conv latents ``z`` plus a context network; frames are the context output (or ``z`` with none).

    ``readout="latents"`` reads the conv latents out instead: the context network keeps its weights (so the
    folder can be read out either way) but is not run, and ``z`` is the only layer. wav2vec 2.0's context
    is trained to pick out masked latents, and layer-wise analyses of wav2vec 2.0 find that the last layer is
    often not the best for a downstream task (Pasad et al., 2021).
    """

    frame_hop = 4

    def __init__(self, n_mels: int = 64, dim: int = 128, context: str = "transformer", layers: int = 2,
                 heads: int = 4, ff: int = 256, dropout: float = 0.1, causal: bool = False, channels: int = 64,
                 reverse: bool = False, readout: str = "context"):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, not {readout!r}")
        if context not in ("transformer", "gru", "none"):
            raise ValueError(f"context must be transformer, gru or none, got {context!r}")
        self._cfg = {"n_mels": n_mels, "dim": dim, "context": context, "layers": layers, "heads": heads, "ff": ff,
                     "dropout": dropout, "causal": causal, "channels": channels, "reverse": reverse}
        if readout != "context":  # recorded only when set, so older configs stay valid
            self._cfg["readout"] = readout
        self.readout = readout
        self.reverse = reverse
        self.features = ConvFeatures(n_mels, dim, channels)
        self.context_type, self.causal = context, causal
        if context == "transformer":
            self.pos = ConvPosition(dim, causal=causal)
            self.blocks = nn.ModuleList(TransformerLayer(dim, heads, ff, dropout, causal) for _ in range(layers))
            self.final_norm = nn.LayerNorm(dim)
        elif context == "gru":
            if not causal:
                raise ValueError("the GRU context is causal (unidirectional); set causal=True")
            self.blocks = nn.ModuleList(nn.GRU(dim, dim, batch_first=True) for _ in range(layers))
        else:
            self.blocks = nn.ModuleList()
        self.frame_dim = dim
        self.n_layers = 1 if readout == "latents" else 1 + len(self.blocks)

    def config(self) -> dict:
        return {"type": "framenet", **self._cfg}

    def inference_parameters(self) -> int:
        """With ``readout="latents"`` only the conv stack's parameters; the context's are kept but not run."""
        mods = self.features if self.readout == "latents" else self
        return sum(p.numel() for p in mods.parameters())

    def local_features(self, logmel: torch.Tensor) -> torch.Tensor:
        """The conv latents ``z``, (B, T/4, dim), before any context."""
        return self.features(logmel)

    def contextualize(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Context-network layer outputs for latents ``z`` (which an objective may have masked)."""
        outs = []
        x = z
        if self.context_type == "transformer":
            x = self.pos(x)
            for i, blk in enumerate(self.blocks):
                x = blk(x)
                outs.append(self.final_norm(x) if i == len(self.blocks) - 1 else x)
        elif self.context_type == "gru":
            for gru in self.blocks:
                y, _ = gru(x)
                x = x + y if x.shape[-1] == y.shape[-1] else y
                outs.append(x)
        return outs

    def hidden_states(self, logmel: torch.Tensor) -> list[torch.Tensor]:
        """Layer outputs in real time order (only ``z`` with ``readout="latents"``). With ``reverse`` the
        network reads the clip backwards (a causal context then summarises the future: backward APC) and its
        outputs are flipped back."""
        if self.reverse:
            logmel = logmel.flip(-1)
        z = self.local_features(logmel)
        out = [z] if self.readout == "latents" else [z, *self.contextualize(z)]
        return [h.flip(1) for h in out] if self.reverse else out
