"""Predictive losses: masked/future reconstruction (APC, MPC, NPC, Audio2Vec) and CPC / wav2vec 2.0 InfoNCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error over the positions where ``mask`` (broadcast over the last dim) is true."""
    err = (pred - target).abs().mean(dim=-1)
    if mask is None:
        return err.mean()
    return err[mask].mean()


def frame_blocks(logmel: torch.Tensor, hop: int) -> torch.Tensor:
    """(B, n_mels, T) log-mel -> (B, T // hop, hop * n_mels): the log-mel frames each output frame covers."""
    b, m, t = logmel.shape
    n = t // hop
    return logmel[:, :, :n * hop].reshape(b, m, n, hop).permute(0, 2, 3, 1).reshape(b, n, hop * m)


def cpc_loss(context: torch.Tensor, latents: torch.Tensor, predictors, negatives: int = 16,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """CPC (van den Oord et al., 2018): W_k c_t scored against z_{t+k} and ``negatives`` latents drawn
    from the whole batch (the same and other sequences), InfoNCE averaged over k = 1..len(predictors)."""
    b, t, d = latents.shape
    flat = latents.reshape(b * t, d)
    total = context.new_zeros(())
    for k, w in enumerate(predictors, start=1):
        if t - k <= 0:
            break
        pred = w(context[:, : t - k]).float()  # (B, T-k, D)
        pos = latents[:, k:]
        idx = torch.randint(0, b * t, (b, t - k, negatives), generator=generator, device=latents.device)
        neg = flat[idx]  # (B, T-k, N, D)
        logits = torch.cat([(pred * pos).sum(-1, keepdim=True), torch.einsum("btd,btnd->btn", pred, neg)], dim=-1)
        total = total + F.cross_entropy(logits.reshape(-1, negatives + 1),
                                        torch.zeros(b * (t - k), dtype=torch.long, device=latents.device))
    return total / len(predictors)


def masked_contrastive_loss(context: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, distractors: int = 10,
                            temperature: float = 0.1, generator: torch.Generator | None = None,
                            across_batch: bool = False, from_other_clips: int = 0) -> torch.Tensor:
    """wav2vec 2.0's contrastive task (Baevski et al., 2020, eq. 3): at each masked step t, pick the true
    latent q_t among ``distractors`` latents sampled from the other steps of the same sequence, by cosine
    similarity / temperature. With ``across_batch`` the distractors are any other step of any sequence in
    the batch (as CPC's negatives), so what stays constant within a clip can tell the true latent apart.
    ``from_other_clips`` of the distractors (the last ones) come from a step of another sequence, the rest
    as above: a mix that asks for both what changes within a clip and what stays constant over it. A distractor
    equal to the positive (a shared codeword of quantised targets, or two steps of digital silence) cannot be
    told apart from it and is left out of the softmax, as in the authors' code."""
    b, t = targets.shape[:2]
    if not 0 <= from_other_clips <= distractors or (from_other_clips and b < 2):
        raise ValueError(f"from_other_clips must be in [0, {distractors}] and needs a batch of 2 or more "
                         f"sequences, got {from_other_clips} with a batch of {b}")
    bi, ti = mask.nonzero(as_tuple=True)
    if len(bi) == 0:
        return context.new_zeros(())
    span = b * t if across_batch else t
    off = torch.randint(1, span, (len(bi), distractors - from_other_clips), generator=generator,
                        device=targets.device)
    if across_batch:  # any other (sequence, step) of the batch
        flat = (bi * t + ti)[:, None] + off
        neg_b, neg_t = (flat // t) % b, flat % t
    else:  # any other step of the same sequence
        neg_b, neg_t = bi[:, None].expand_as(off), (ti[:, None] + off) % t
    if from_other_clips:  # any step of another sequence
        shape = (len(bi), from_other_clips)
        other_b = (bi[:, None] + torch.randint(1, b, shape, generator=generator, device=targets.device)) % b
        other_t = torch.randint(0, t, shape, generator=generator, device=targets.device)
        neg_b, neg_t = torch.cat([neg_b, other_b], 1), torch.cat([neg_t, other_t], 1)
    pos_raw, neg_raw = targets[bi, ti], targets[neg_b, neg_t]
    c = F.normalize(context[bi, ti], dim=-1)
    pos, neg = F.normalize(pos_raw, dim=-1), F.normalize(neg_raw, dim=-1)
    same = (neg_raw == pos_raw[:, None]).all(-1)
    neg_logits = torch.einsum("nd,nkd->nk", c, neg).masked_fill(same, float("-inf"))
    logits = torch.cat([(c * pos).sum(-1, keepdim=True), neg_logits], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(bi), dtype=torch.long, device=targets.device))


def codebook_diversity_loss(probs: torch.Tensor) -> torch.Tensor:
    """wav2vec 2.0's diversity loss (Baevski et al., 2020, eq. 4): (G·V − Σ_g exp H(p̄_g)) / (G·V), where
    p̄_g is codebook g's softmax over its V entries averaged over every step of the batch (``probs``: (N, G,
    V)). 0 when every entry of every codebook is used equally; near 1 when each codebook uses one entry."""
    _, g, v = probs.shape
    mean = probs.float().mean(dim=0)
    perplexity = torch.exp(-(mean * torch.log(mean + 1e-7)).sum(-1)).sum()
    return (g * v - perplexity) / (g * v)


def span_mask(batch: int, length: int, ratio: float, span: int,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """(batch, length) boolean mask of random spans covering about ``ratio`` of the steps (at least one span)."""
    n_spans = max(1, round(ratio * length / span))
    starts = torch.randint(0, max(1, length - span + 1), (batch, n_spans), generator=generator)
    pos = torch.arange(length)
    return ((pos[None, None] >= starts[..., None]) & (pos[None, None] < starts[..., None] + span)).any(dim=1)
