"""AudioNTT: the 2-D CNN clip encoder of BYOL-A (Niizumi et al., 2021), after Koizumi et al.'s NTT model."""

from __future__ import annotations

import torch
from torch import nn

from .base import Encoder


def _block(cin: int, cout: int, freq_pool: int = 2) -> nn.Sequential:
    pool = (freq_pool, 2)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(pool, pool))


class AudioNTT(Encoder):
    """Three conv blocks (3x3 conv, BN, ReLU, max-pool), then a two-layer MLP per frame.

    Output frames are 8 log-mel frames apart (80 ms at a 10 ms hop). ``freq_pools`` sets each block's pooling
    along frequency (BYOL-A: 2, 2, 2); less pooling keeps finer frequency (pitch) resolution.
    ``readout="concat"`` is AudioNTT2022's (BYOL-A v2, Niizumi et al., 2023): each layer's frames are the
    flattened conv features concatenated with that MLP layer's output, so the clip embedding keeps the
    conv features' frequency layout beside the MLP's abstraction.
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
        if readout not in ("mlp", "concat"):
            raise ValueError(f"readout must be 'mlp' or 'concat', not {readout!r}")
        if readout != "mlp":
            self._cfg["readout"] = readout
        self.readout = readout
        self.features = nn.Sequential(_block(1, channels, fp[0]), _block(channels, channels, fp[1]),
                                      _block(channels, channels, fp[2]))
        self.fc = nn.Sequential(
            nn.Linear(channels * (n_mels // reduce), hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(),
        )
        self.frame_dim = hidden + (channels * (n_mels // reduce) if readout == "concat" else 0)
        self.n_layers = 2

    def config(self) -> dict:
        return {"type": "audiontt", **self._cfg}

    def hidden_states(self, logmel: torch.Tensor) -> list[torch.Tensor]:
        x = self.features(logmel.unsqueeze(1))  # (B, C, F/8, T/8)
        b, c, f, t = x.shape
        x = x.permute(0, 3, 1, 2).reshape(b, t, c * f)
        h1 = self.fc[1](self.fc[0](x))
        h2 = self.fc[4](self.fc[3](self.fc[2](h1)))
        if self.readout == "concat":
            return [torch.cat([x, h1], dim=-1), torch.cat([x, h2], dim=-1)]
        return [h1, h2]
