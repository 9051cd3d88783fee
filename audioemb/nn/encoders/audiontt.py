"""AudioNTT: the 2-D CNN clip encoder of BYOL-A (Niizumi et al., 2021), after Koizumi et al.'s NTT model."""

from __future__ import annotations

import torch
from torch import nn

from .base import Encoder

READOUTS = ("mlp", "concat", "concat_fine")


def _block(cin: int, cout: int, freq_pool: int = 2) -> nn.Sequential:
    pool = (freq_pool, 2)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(pool, pool))


class AudioNTT(Encoder):
    """Three conv blocks (3x3 conv, BN, ReLU, max-pool), then a two-layer MLP per frame.

    Output frames are 8 log-mel frames apart (80 ms at a 10 ms hop). ``freq_pools`` sets each block's pooling
    along frequency (BYOL-A: 2, 2, 2); less pooling keeps finer frequency (pitch) resolution.
    ``readout="concat"`` is AudioNTT2022's (BYOL-A v2, Niizumi et al., 2023): each layer's frames are the
    flattened conv features concatenated with that MLP layer's output, so the clip embedding keeps the
    conv features' frequency layout beside the MLP's abstraction. ``readout="concat_fine"`` takes the conv
    features from the second block before its frequency pooling instead (``n_mels / freq_pools[0]`` rows: 32
    against the third block's 8 with BYOL-A's pooling), max-pooled over time to the frame rate: finer pitch,
    more dimensions.
    """

    frame_hop = 8

    def __init__(self, n_mels: int = 64, channels: int = 64, hidden: int = 256, dropout: float = 0.3,
                 freq_pools: tuple[int, int, int] | list[int] = (2, 2, 2), readout: str = "mlp"):
        super().__init__()
        fp = list(freq_pools)
        reduce = fp[0] * fp[1] * fp[2]
        if len(fp) != 3 or n_mels % reduce:
            raise ValueError(f"n_mels ({n_mels}) must be divisible by the product of 3 freq_pools {fp}")
        self._cfg = {"n_mels": n_mels, "channels": channels, "hidden": hidden, "dropout": dropout}
        if fp != [2, 2, 2]:  # recorded only when it differs from BYOL-A's, so older configs stay valid
            self._cfg["freq_pools"] = fp
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, not {readout!r}")
        if readout != "mlp":
            self._cfg["readout"] = readout
        self.readout = readout
        self.features = nn.Sequential(_block(1, channels, fp[0]), _block(channels, channels, fp[1]),
                                      _block(channels, channels, fp[2]))
        self.fc = nn.Sequential(
            nn.Linear(channels * (n_mels // reduce), hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(),
        )
        conv_rows = {"mlp": 0, "concat": n_mels // reduce, "concat_fine": n_mels // fp[0]}[readout]
        self.frame_dim = hidden + channels * conv_rows
        self.n_layers = 2

    def config(self) -> dict:
        return {"type": "audiontt", **self._cfg}

    def hidden_states(self, logmel: torch.Tensor) -> list[torch.Tensor]:
        block2 = self.features[1]
        fine = block2[:-1](self.features[0](logmel.unsqueeze(1)))  # block 2 before its pooling: (B, C, F/fp0, T/2)
        x = _frames(self.features[2](block2[-1](fine)))  # (B, T/8, C * F/8)
        h1 = self.fc[:2](x)
        h2 = self.fc[2:](h1)
        if self.readout == "mlp":
            return [h1, h2]
        conv = x if self.readout == "concat" else _frames(nn.functional.max_pool2d(fine, (1, 4)))
        return [torch.cat([conv, h1], dim=-1), torch.cat([conv, h2], dim=-1)]


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, T) -> (B, T, C*F), channel-major within each frame."""
    b, c, f, t = x.shape
    return x.permute(0, 3, 1, 2).reshape(b, t, c * f)
