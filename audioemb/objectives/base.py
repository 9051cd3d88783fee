"""What every SSL objective provides to the one trainer: a loss per step and a few hooks.

The contract, both ways:

- each step the trainer hands every objective the same :class:`Batch` (waveform crops, the step, the clip ids);
- the epoch hook sees the trainer only through :class:`TrainerView` (the clip count, clip embeddings, and a
  way to drop optimizer state), never the trainer itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..nn.encoders import Encoder
from ..nn.frontend import LogMel
from ..nn.views import Views


@dataclass(frozen=True)
class Batch:
    """One training step's input, the same for every objective.

    ``waveforms``: (batch, n_crops, samples) float32 crops, on the training device (crops of one recording
    are positives); ``step``: the global step (0-based); ``clips``: (batch,) int64 indices of the recordings
    in the training set (memory banks and pseudo-labels are indexed by them).
    """

    waveforms: torch.Tensor
    step: int
    clips: np.ndarray


@dataclass(frozen=True)
class TrainerView:
    """What an objective's epoch hook may use of the trainer.

    ``n_clips``: recordings in the training set; ``embed_clips(indices)``: their clip embeddings by the
    online encoder (eval mode, one fixed centre crop each), a CPU tensor; ``forget_optimizer_state(params)``:
    drop the optimizer's state (moments) for re-initialised parameters.
    """

    n_clips: int
    embed_clips: Callable[[np.ndarray], torch.Tensor]
    forget_optimizer_state: Callable[[Iterable[nn.Parameter]], None] = lambda params: None


class Objective(nn.Module):
    """Base class: owns the online encoder, its heads and any target networks, queues or banks.

    The trainer calls :meth:`training_step` with a :class:`Batch`, afterwards :meth:`on_after_step` (EMA
    updates through :meth:`momentum_pairs`, queue pushes) and, at each epoch boundary, :meth:`on_epoch_start`
    with a :class:`TrainerView` (re-clustering). ``training_step`` returns a dict with ``loss`` and
    ``embeddings`` (the online clip representations, watched for collapse), plus any scalar tensors to log.
    """

    name: str = ""
    n_crops: int = 2  # waveform crops per recording that the data loader supplies
    base_momentum: float = 0.99  # EMA rate at step 0, raised to 1 on a cosine schedule (BYOL)
    supports_ddp: bool = True  # False: the trainer refuses several processes with a clear message
    ddp_unused_parameters: bool = False  # True when some steps leave parameters out of the loss (DDP must know)
    # settings of the per-objective smoke test (tests/test_objectives.py): small heads so that it runs in seconds
    tiny_params: ClassVar[dict] = {}
    tiny_encoder: ClassVar[dict] = {"type": "audiontt", "channels": 8, "hidden": 32}

    def __init__(self, encoder: Encoder, frontend: LogMel, views: Views):
        super().__init__()
        self.encoder = encoder
        self.frontend = frontend
        self.views = views
        self.frontend.requires_grad_(False)

    # --- helpers -----------------------------------------------------------------------------------
    @torch.no_grad()
    def logmels(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, n, samples) waveforms -> (B, n, n_mels, frames) normalised log-mels."""
        b, n, s = wav.shape
        with torch.autocast(wav.device.type, enabled=False):  # the frontend always runs in float32
            x = self.frontend(wav.reshape(b * n, s).float())
        return x.reshape(b, n, *x.shape[1:])

    def two_views(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented log-mel views of the first two crops (crops of the same recording are positives)."""
        x = self.logmels(wav)
        return self.views(x[:, 0]), self.views(x[:, 1 % x.shape[1]])

    def view_and_clean(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first crop's augmented log-mel view and the clean log-mel it was made from (past-only
        augmentation: the context reads the view, the targets come from the clean crop)."""
        clean = self.logmels(wav)[:, 0]
        return self.views(clean), clean

    def embed(self, x: torch.Tensor, encoder: Encoder | None = None) -> torch.Tensor:
        """Pooled clip representation of log-mel ``x`` (B, n_mels, T) by ``encoder`` (default: online)."""
        enc = encoder or self.encoder
        return enc.pool(enc(x))

    @staticmethod
    def f32(*xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Cast to float32 (losses are computed in float32 under bfloat16 autocast)."""
        return tuple(x.float() for x in xs)

    # --- hooks -------------------------------------------------------------------------------------
    def setup(self, n_clips: int) -> None:
        """Called once with the number of training clips, before a checkpoint is loaded (memory banks)."""

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """:meth:`training_step`; the trainer calls the objective (or its DDP wrapper) this way."""
        return self.training_step(batch)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) module pairs updated as target <- m * target + (1 - m) * online."""
        return []

    def momentum(self, progress: float) -> float:
        """EMA rate: cosine increase from ``base_momentum`` to 1 over training (BYOL, sec. 3.2)."""
        return 1 - (1 - self.base_momentum) * (math.cos(math.pi * progress) + 1) / 2

    @torch.no_grad()
    def on_after_step(self, step: int, progress: float) -> None:
        m = self.momentum(progress)
        for online, target in self.momentum_pairs():
            update_momentum(online, target, m)

    def on_epoch_start(self, epoch: int, trainer: TrainerView) -> None:
        """Called before each epoch (DeepCluster and Local Aggregation re-cluster here)."""


@torch.no_grad()
def update_momentum(online: nn.Module, target: nn.Module, m: float) -> None:
    """target <- m * target + (1 - m) * online, for parameters; buffers (BN statistics) are copied."""
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.mul_(m).add_(po.detach(), alpha=1 - m)
    for bo, bt in zip(online.buffers(), target.buffers()):
        bt.copy_(bo)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` that gets no gradient (a target / momentum network)."""
    import copy

    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target
