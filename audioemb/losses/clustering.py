"""Clustering losses: SwAV's swapped prediction with Sinkhorn-Knopp, and Local Aggregation."""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Equipartitioned soft assignments Q (B, K) from prototype scores (Caron et al., 2020, sec. 3.1).

    Q = diag(u) exp(scores / epsilon) diag(v), with rows (samples) summing to 1 and every prototype
    receiving B / K of the mass.
    """
    q = torch.exp((scores - scores.max()) / epsilon).T  # (K, B)
    q /= q.sum()
    k, b = q.shape
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True)
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    return (q * b).T


def swapped_prediction_loss(scores: list[torch.Tensor], n_assign: int = 2, temperature: float = 0.1,
                            epsilon: float = 0.05, iterations: int = 3,
                            queue_scores: list[torch.Tensor] | None = None) -> torch.Tensor:
    """SwAV loss: codes of each of the first ``n_assign`` views predicted from every other view.

    ``scores[v]`` (B, K) are view v's similarities to the prototypes. ``queue_scores[v]`` (M, K), when
    given, are prepended to view v's scores for Sinkhorn (small-batch stability) and dropped after.
    """
    loss = scores[0].new_zeros(())
    terms = 0
    for i in range(n_assign):
        s = scores[i].detach()
        if queue_scores is not None:
            s = torch.cat([queue_scores[i], s])
        q = sinkhorn(s, epsilon, iterations)[-len(scores[i]):]
        for v, sv in enumerate(scores):
            if v == i:
                continue
            loss = loss - (q * F.log_softmax(sv / temperature, dim=1)).sum(dim=1).mean()
            terms += 1
    return loss / terms


def local_aggregation_loss(sim: torch.Tensor, background: torch.Tensor, close: torch.Tensor) -> torch.Tensor:
    """Local Aggregation (Zhuang et al., 2019, eq. 3): -log P(C ∩ B | v) / P(B | v).

    ``sim`` (B, N): similarities / temperature of each embedding to the memory bank. ``background`` and
    ``close`` (B, N) boolean masks: the background neighbours B_i and close neighbours C_i. P(A | v) is
    proportional to sum_{j in A} exp(sim_ij), so the loss is logsumexp over B - logsumexp over C ∩ B.
    """
    neg_inf = torch.finfo(sim.dtype).min
    both = background & close
    lse_close = torch.where(both, sim, neg_inf).logsumexp(dim=1)
    lse_back = torch.where(background, sim, neg_inf).logsumexp(dim=1)
    valid = both.any(dim=1)
    return (lse_back - lse_close)[valid].mean()
