"""Siamese losses without negatives: SimSiam and Barlow Twins."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def simsiam_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's D(p, z) = -cos(p, stopgrad(z)), averaged over the batch (Chen & He, 2021, eq. 1)."""
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


def _off_diagonal(c: torch.Tensor) -> torch.Tensor:
    n = c.shape[0]
    return c.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """C_ij = sum_b z1n_bi z2n_bj / N with z standardised along the batch (Zbontar et al., 2021, eq. 2)."""
    n = len(z1)
    z1n = (z1 - z1.mean(0)) / z1.std(0, unbiased=False).clamp_min(1e-6)
    z2n = (z2 - z2.mean(0)) / z2.std(0, unbiased=False).clamp_min(1e-6)
    return z1n.T @ z2n / n


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambda_: float = 5e-3) -> torch.Tensor:
    """Barlow Twins: sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 (Zbontar et al., 2021, eq. 1)."""
    c = cross_correlation(z1, z2)
    return (1 - c.diagonal()).square().sum() + lambda_ * _off_diagonal(c).square().sum()
