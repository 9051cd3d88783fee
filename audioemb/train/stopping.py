"""Stopping a training run on SIGINT or SIGTERM after the step it is on, with a checkpoint, so that a run
stopped by Ctrl-C, ``kill`` or a scheduler's time limit loses nothing and resumes where it stopped."""

from __future__ import annotations

import signal
import threading

import torch

from ..errors import AudioembError

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(AudioembError):
    """The run stopped on a signal after saving a checkpoint; the exit code is the shell's 128 + signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopRequest:
    """While installed (in the main thread), SIGINT and SIGTERM ask the run to stop after its current step
    instead of killing it mid-step; a second SIGINT stops at once (KeyboardInterrupt)."""

    def __init__(self):
        self.signum = 0
        self._old: dict = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in _SIGNALS}

    def restore(self) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old = {}

    def _handle(self, signum, frame) -> None:
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def requested(self, world: int, device: str) -> int:
        """The signal asking to stop (0: none), the same on every rank: under DDP the ranks agree on it at
        each step, so they all save the same step's checkpoint."""
        if world == 1:
            return self.signum
        t = torch.tensor([self.signum], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())
