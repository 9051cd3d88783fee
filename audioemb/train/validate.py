"""A run's settings tried before any audio is decoded: the objective is built and run on a little noise."""

from __future__ import annotations

import torch

from .config import ConfigError, TrainConfig

_CLIPS = 10_000  # clips the objective is set up for here (memory banks; clusters need at least as many)
_BUILD_ERRORS = (TypeError, ValueError, RuntimeError, ZeroDivisionError, KeyError, AttributeError, IndexError)


def check_builds(cfg: TrainConfig) -> None:
    """Build ``cfg``'s objective and run its frontend, views and encoder on two crops of noise, so that an
    unknown or mistyped setting of the encoder, frontend, views or objective (a ``--set`` typo, a size that
    does not fit) is one :class:`ConfigError` naming the error, before any audio is decoded. Leaves the
    global random state as it was."""
    from ..objectives import build_objective

    sr = int(cfg.frontend.get("sample_rate", 16000)) if isinstance(cfg.frontend.get("sample_rate", 0), int) else 0
    if sr <= 0:
        raise ConfigError(f"frontend.sample_rate must be a positive integer, not {cfg.frontend.get('sample_rate')!r}")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        wav = 0.1 * torch.randn(2, 2, max(1, int(round(cfg.crop_s * sr))))
        try:
            obj = build_objective(cfg, _CLIPS)
            obj.eval()
            with torch.no_grad():
                obj.embed(obj.two_views(wav)[0])
        except _BUILD_ERRORS as e:
            raise ConfigError(f"these settings do not make a model that runs ({type(e).__name__}: {e}); check the "
                              "--set values of encoder, frontend, views and objective_params") from None
