"""The contrastive loss family of the survey (Liu et al., 2022, sec. 4.1), as pure functions.

Batch convention: ``a`` (N, D) anchors and ``p`` (N, D) positives, where ``p[i]`` is another view of
``a[i]``'s recording and every ``p[j]``, j != i, comes from another recording (a negative).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _off_diagonal_mask(n: int, device) -> torch.Tensor:
    return ~torch.eye(n, dtype=torch.bool, device=device)


def max_margin_loss(a: torch.Tensor, p: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Pairwise max-margin contrastive loss (Hadsell et al., 2006).

    Positive pairs: ||a_i - p_i||^2; negative pairs (a_i, p_j), j != i: max(0, margin - ||a_i - p_j||)^2.
    Returns the mean positive term plus the mean negative term.
    """
    d = torch.cdist(a, p)
    pos = d.diagonal().square().mean()
    neg = F.relu(margin - d[_off_diagonal_mask(len(a), a.device)]).square().mean()
    return pos + neg


def triplet_loss(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Triplet loss (Schroff et al., 2015): mean of max(0, ||a - p||^2 - ||a - n||^2 + margin)."""
    return F.relu((a - p).square().sum(-1) - (a - n).square().sum(-1) + margin).mean()


def npair_loss(a: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Multi-class N-pair loss (Sohn, 2016): mean of log(1 + sum_{j != i} exp(a_i.p_j - a_i.p_i)).

    Equal to cross-entropy over the logits ``a @ p.T`` with the matching positive as the class.
    """
    logits = a @ p.T
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


def info_nce_loss(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor | None = None,
                  temperature: float = 1.0, normalize: bool = True) -> torch.Tensor:
    """InfoNCE (van den Oord et al., 2018): -log exp(q.k+/t) / (exp(q.k+/t) + sum_n exp(q.k_n/t)).

    ``k[i]`` is ``q[i]``'s positive. Negatives are the other rows of ``k`` (in-batch) or, when given,
    ``negatives`` (M, D) shared by every query (MoCo's queue). ``normalize`` uses cosine similarity.
    """
    if normalize:
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        negatives = None if negatives is None else F.normalize(negatives, dim=-1)
    if negatives is None:
        logits = q @ k.T
        labels = torch.arange(len(q), device=q.device)
    else:
        logits = torch.cat([(q * k).sum(-1, keepdim=True), q @ negatives.T], dim=1)
        labels = torch.zeros(len(q), dtype=torch.long, device=q.device)
    return F.cross_entropy(logits / temperature, labels)


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent (SimCLR, Chen et al., 2020): InfoNCE over 2N views, each view's negatives the other 2N - 2.

    -log exp(s(i, j)/t) / sum_{k != i} exp(s(i, k)/t), cosine similarity s, averaged over all 2N views.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    n = len(z1)
    sim = (z @ z.T / temperature).masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    labels = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, labels)


def alignment_loss(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """L_align = E ||f(x) - f(x+)||_2^alpha on L2-normalised embeddings (Wang & Isola, 2020)."""
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    return (x - y).norm(dim=-1).pow(alpha).mean()


def uniformity_loss(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """L_uniform = log E_{i<j} exp(-t ||f(x_i) - f(x_j)||^2) on L2-normalised embeddings (Wang & Isola, 2020)."""
    x = F.normalize(x, dim=-1)
    return torch.pdist(x).pow(2).mul(-t).exp().mean().log()


def align_uniform_loss(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0, t: float = 2.0,
                       weight: float = 1.0) -> torch.Tensor:
    """L_align + weight * (L_uniform(x) + L_uniform(y)) / 2 (Wang & Isola, 2020)."""
    return alignment_loss(x, y, alpha) + weight * (uniformity_loss(x, t) + uniformity_loss(y, t)) / 2


def contrastive_loss(name: str, a: torch.Tensor, p: torch.Tensor, temperature: float = 0.2,
                     margin: float = 1.0) -> torch.Tensor:
    """One of the family by name, on a batch of (anchor, positive) pairs; negatives are the other pairs.

    Names: ``nt_xent``, ``info_nce``, ``npair``, ``triplet``, ``max_margin``, ``align_uniform``. The
    pair-based losses (triplet, max_margin) work on L2-normalised embeddings; triplet's negative for
    anchor i is the positive of pair i + 1.
    """
    if name == "nt_xent":
        return nt_xent_loss(a, p, temperature)
    if name == "info_nce":
        return (info_nce_loss(a, p, temperature=temperature) + info_nce_loss(p, a, temperature=temperature)) / 2
    if name == "npair":
        a, p = F.normalize(a, dim=-1) / temperature**0.5, F.normalize(p, dim=-1) / temperature**0.5
        return npair_loss(a, p)
    if name == "triplet":
        a, p = F.normalize(a, dim=-1), F.normalize(p, dim=-1)
        return triplet_loss(a, p, p.roll(1, dims=0), margin)
    if name == "max_margin":
        return max_margin_loss(F.normalize(a, dim=-1), F.normalize(p, dim=-1), margin)
    if name == "align_uniform":
        return align_uniform_loss(a, p)
    raise ValueError(f"unknown contrastive loss {name!r}")


CONTRASTIVE_LOSSES = ("nt_xent", "info_nce", "npair", "triplet", "max_margin", "align_uniform")
