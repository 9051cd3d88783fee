"""BYOL's regression loss (Grill et al., 2020, "Bootstrap Your Own Latent", eq. 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z); ``z`` (the target) gets no gradient."""
    return (2.0 - 2.0 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()
