"""Projection and prediction heads, built from (in, out, batchnorm, activation) blocks as in lightly."""

from __future__ import annotations

from torch import nn


class ProjectionHead(nn.Sequential):
    """A stack of ``(in_dim, out_dim, batch_norm, activation)`` blocks: Linear [+ BatchNorm1d] [+ act]."""

    def __init__(self, blocks: list[tuple[int, int, nn.Module | None, nn.Module | None]]):
        layers: list[nn.Module] = []
        for i, o, bn, act in blocks:
            layers.append(nn.Linear(i, o, bias=bn is None))
            if bn is not None:
                layers.append(bn)
            if act is not None:
                layers.append(act)
        super().__init__(*layers)


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 2, last_bn: bool = False,
        batch_norm: bool = True) -> ProjectionHead:
    """``layers``-layer MLP with (BatchNorm and) ReLU between layers (BYOL, SimCLR, MoCo, SimSiam heads)."""
    blocks = []
    d = in_dim
    for _ in range(layers - 1):
        blocks.append((d, hidden, nn.BatchNorm1d(hidden) if batch_norm else None, nn.ReLU()))
        d = hidden
    blocks.append((d, out_dim, nn.BatchNorm1d(out_dim, affine=False) if last_bn else None, None))
    return ProjectionHead(blocks)
