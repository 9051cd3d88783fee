"""Frequency-shifted log-mel views for a relative-shift prediction term (keeps pitch in clip embeddings).

SPICE (Gfeller et al., 2020) learns pitch by asking a network how far apart two transposed copies of one
constant-Q spectrogram are. On a log-mel, a shift by whole bands is only close to a transposition (the mel
scale is linear below about 1 kHz), but it asks the same of an encoder: to keep where in frequency the energy
of a sound lies, which a clip-level invariance objective is free to discard.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..nn.heads import mlp


def shift_bands(x: torch.Tensor, shift: torch.Tensor, margin: int) -> torch.Tensor:
    """Shift log-mel ``x`` (B, n_mels, T) up by ``shift`` (B,) bands each (negative: down), then set the
    ``margin`` lowest and highest bands to each clip's minimum. With ``|shift| <= margin`` no band that was
    filled in by the shift survives, so the blanked edges are the same whatever the shift, and only the
    position of the content tells it."""
    b, m, t = x.shape
    if margin < 0 or 2 * margin >= m:
        raise ValueError(f"margin must be in [0, {(m - 1) // 2}] for {m} bands, not {margin}")
    if shift.numel() and shift.abs().max().item() > margin:
        raise ValueError(f"shifts must be within +-{margin} bands")
    src = torch.arange(m, device=x.device)[None, :] - shift.to(x.device)[:, None]
    out = x.gather(1, src.clamp(0, m - 1)[:, :, None].expand(b, m, t))
    fill = x.amin(dim=(1, 2), keepdim=True).expand(b, margin, t)
    out[:, :margin] = fill
    out[:, m - margin:] = fill
    return out


def random_shifts(batch: int, max_shift: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(batch,) shifts drawn uniformly from -max_shift..max_shift (torch's global generator)."""
    return torch.randint(-max_shift, max_shift + 1, (batch,), device=device)


def shift_head(embedding_dim: int, hidden: int, max_shift: int, n_mels: int) -> nn.Module:
    """The head that names the shift (one of ``2 * max_shift + 1``) from two concatenated embeddings."""
    if not 0 < max_shift < n_mels // 2:
        raise ValueError(f"max_shift must be in 1..{n_mels // 2 - 1}, not {max_shift}")
    return mlp(2 * embedding_dim, hidden, 2 * max_shift + 1)


def shift_term(head: nn.Module, embed: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
               max_shift: int) -> dict[str, torch.Tensor]:
    """Cross-entropy of naming the band shift between log-mel ``x`` (B, n_mels, T), embedded as ``y``, and a
    copy of it shifted by a random whole number of bands and embedded by ``embed`` (SPICE, Gfeller et al.,
    2020); ``shift_acc`` is the share named right."""
    shift = random_shifts(x.shape[0], max_shift, x.device)
    ys = embed(shift_bands(x, shift, max_shift))
    logits = head(torch.cat([y, ys], dim=1)).float()
    label = shift + max_shift
    return {"shift_loss": nn.functional.cross_entropy(logits, label),
            "shift_acc": (logits.argmax(1) == label).float().mean().detach()}


class BandShiftTerm:
    """Mixin for an :class:`~audioemb.objectives.base.Objective`: the optional band-shift term, off unless
    ``shift_weight`` > 0 (then, and only then, a ``shift_head`` is built, so runs without it keep their
    parameters and random draws)."""

    shift_weight: float = 0.0

    def init_shift(self, encoder, frontend, shift_weight: float, max_shift: int, shift_hidden: int) -> None:
        """Check the term's settings and build its head; call after ``Objective.__init__``."""
        if shift_weight < 0:
            raise ValueError(f"shift_weight must be >= 0, got {shift_weight}")
        self.shift_weight, self.max_shift = shift_weight, max_shift
        if shift_weight > 0:
            self.shift_head = shift_head(encoder.embedding_dim, shift_hidden, max_shift, frontend.cfg.n_mels)

    def shift_loss(self, x: torch.Tensor, y: torch.Tensor,
                   embed: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Cross-entropy of naming the band shift between log-mel ``x`` (B, n_mels, T), embedded as ``y``,
        and a copy of it shifted by a random whole number of bands and embedded by ``embed`` (default: the
        objective's ``embed``), and the share named right."""
        return shift_term(self.shift_head, embed or self.embed, x, y, self.max_shift)

    def add_shift_term(self, out: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                       own: str | None = None,
                       embed: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict:
        """``out`` with ``shift_weight`` times the term added to its loss and the term logged (detached); with
        ``own``, the loss before the term is logged under that name too. ``embed`` embeds the shifted copy
        the way ``y`` was embedded (default: the objective's ``embed``)."""
        if self.shift_weight > 0:
            if own:
                out[own] = out["loss"].detach()
            terms = self.shift_loss(x, y, embed)
            out.update(loss=out["loss"] + self.shift_weight * terms["shift_loss"],
                       shift_loss=terms["shift_loss"].detach(), shift_acc=terms["shift_acc"])
        return out
