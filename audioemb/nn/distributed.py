"""Small helpers over ``torch.distributed`` for training with DDP (torchrun), no-ops in a single process.

Objectives with state use them to stay correct across ranks: MoCo's queue and Local Aggregation's memory
bank take every rank's keys (:func:`all_gather_cat`), and re-clustering is done once on rank 0 and shared
(:func:`broadcast_`).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def launched_by_torchrun() -> bool:
    """True when the environment of ``torchrun`` (``RANK``, ``WORLD_SIZE``) is set for this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def init_from_env(device: str) -> None:
    """Join the process group torchrun describes: gloo on the CPU, NCCL on CUDA."""
    if dist.is_initialized() or not launched_by_torchrun():
        return
    backend = "nccl" if device == "cuda" else "gloo"
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@torch.no_grad()
def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` (same shape on every rank) from all ranks along dim 0, in rank order."""
    if not is_distributed():
        return t
    parts = [torch.empty_like(t) for _ in range(world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


@torch.no_grad()
def broadcast_(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``t`` in place with rank ``src``'s value; returns ``t``."""
    if is_distributed():
        dist.broadcast(t, src)
    return t


@torch.no_grad()
def broadcast_module_(module: torch.nn.Module, src: int = 0) -> None:
    """Make every parameter and buffer of ``module`` equal to rank ``src``'s."""
    for t in [*module.parameters(), *module.buffers()]:
        broadcast_(t.data, src)


def barrier() -> None:
    if is_distributed():
        dist.barrier()
