"""NPCNet: the masked-convolution encoder of Non-autoregressive Predictive Coding (Liu, Chung & Glass, 2021).

Works at the log-mel frame rate (hop 1). Each layer l has a residual 1-D conv block h_l and a masked conv
f_l over h_l whose kernel centre is zeroed wide enough that f_l at time t never depends on the input frames
t - m .. t + m (the mask grows with the receptive field of h_l). The representation is the running sum of
the f_l, so it sees only local context around, but never at, the current frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Encoder


class MaskedConv1d(nn.Conv1d):
    """Conv1d whose kernel taps within ``half_mask`` of the centre are zero.

    The weight keeps its full ``kernel`` width (checkpoints and exported models are unchanged), but only
    the live taps are computed: the ``side`` taps left of the mask and the ``side`` taps right of it, as one
    conv of width ``side`` over the two shifted inputs stacked on the channel axis. The masked taps are
    most of the kernel in deep layers (11 of 15 in the third layer of ``npc-s``), and computing them as
    zeros made these convs up to 3.6x slower, forward and backward, than skipping them.
    """

    def __init__(self, channels: int, kernel: int, half_mask: int):
        super().__init__(channels, channels, kernel, padding=kernel // 2)
        self.side = kernel // 2 - half_mask  # live taps on each side of the mask
        if self.side < 1:
            raise ValueError(f"a masked conv of width {kernel} with half-mask {half_mask} has no live taps")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.side
        xp = F.pad(x, (k // 2, k // 2))  # length T + k - 1; each half below is T + s - 1, giving T outputs
        stacked = torch.cat([xp[..., :s - k], xp[..., k - s:]], dim=1)
        w = torch.cat([self.weight[..., :s], self.weight[..., k - s:]], dim=1)
        return F.conv1d(stacked, w, self.bias)


class NPCNet(Encoder):
    frame_hop = 1

    def __init__(self, n_mels: int = 64, dim: int = 128, layers: int = 3, kernel: int = 5, mask: int = 1,
                 context: int = 2):
        super().__init__()
        self._cfg = {"n_mels": n_mels, "dim": dim, "layers": layers, "kernel": kernel, "mask": mask,
                     "context": context}
        self.inp = nn.Conv1d(n_mels, dim, 1)  # pointwise: no temporal context yet
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, kernel, padding=kernel // 2) for _ in range(layers - 1))
        half = (kernel - 1) // 2
        self.masked = nn.ModuleList()
        for layer in range(layers):
            m = mask + layer * half  # h_layer reaches layer * half frames: widen the mask by as much
            self.masked.append(MaskedConv1d(dim, 2 * (m + context) + 1, m))
        self.norm = nn.LayerNorm(dim)
        self.frame_dim = dim
        self.n_layers = layers

    def config(self) -> dict:
        return {"type": "npcnet", **self._cfg}

    def hidden_states(self, logmel: torch.Tensor) -> list[torch.Tensor]:
        h = self.inp(logmel)
        y = torch.zeros_like(h)
        outs = []
        for i, masked in enumerate(self.masked):
            y = y + masked(h)
            outs.append(self.norm(y.transpose(1, 2)))
            if i < len(self.convs):
                h = h + F.relu(self.convs[i](h))
        return outs
