"""Shared fixtures: the repository's real example clips and small exported models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ROOT / "examples" / "clips"


@pytest.fixture(scope="session")
def clip_paths() -> list[Path]:
    paths = sorted(p for p in CLIPS.iterdir() if p.suffix in {".wav", ".flac", ".ogg", ".mp3"})
    assert len(paths) >= 8
    return paths


@pytest.fixture(scope="session")
def clips16k(clip_paths) -> list[np.ndarray]:
    """The example clips decoded to 16 kHz mono float32."""
    from audioemb.audio import load

    return [load(p, 16000) for p in clip_paths]


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _shipped(tmp: Path, name: str, as_name: str) -> Path:
    """A copy of the shipped model ``name`` renamed ``as_name`` (for the plain install, where nothing can be
    exported): the tests then see the same names either way."""
    import json
    import shutil

    from audioemb.modelfolder import write_config
    from audioemb.registry import pretrained_dir

    folder = tmp / as_name
    shutil.copytree(pretrained_dir() / name, folder)
    cfg = json.loads((folder / "config.json").read_text())
    write_config(folder, {**cfg, "name": as_name})
    return folder


def _export(tmp: Path, encoder: dict, waves: list[np.ndarray], name: str) -> Path:
    import torch

    from audioemb.nn.export import save_model
    from audioemb.nn.model import AudioEmbedder

    torch.manual_seed(0)
    model = AudioEmbedder.from_config({"type": "logmel"}, encoder)
    model.frontend.fit_stats([torch.from_numpy(w) for w in waves])
    folder = tmp / name
    save_model(model, folder, {"name": name, "objective": {"name": "none (random init, for tests)"}}, waves[:3])
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, clips16k) -> Path:
    """A small AudioNTT with seeded random weights, exported as a model folder (torch needed; on the plain
    install a shipped model stands in, so that the inference tests run there too)."""
    if not _has_torch():
        return _shipped(tmp_path_factory.mktemp("models"), "byol-s.debian2", "tiny-ntt.test")
    return _export(tmp_path_factory.mktemp("models"), {"type": "audiontt", "channels": 8, "hidden": 32}, clips16k,
                   "tiny-ntt.test")


@pytest.fixture(scope="session")
def tiny_frame_model(tmp_path_factory, clips16k) -> Path:
    """A small FrameNet (transformer context), exported as a model folder (plain install: a shipped one)."""
    if not _has_torch():
        return _shipped(tmp_path_factory.mktemp("models"), "mpc-s.debian2", "tiny-framenet.test")
    enc = {"type": "framenet", "dim": 32, "layers": 2, "heads": 2, "ff": 64, "channels": 16}
    return _export(tmp_path_factory.mktemp("models"), enc, clips16k, "tiny-framenet.test")


def tiny_objective(name: str, clips16k: list[np.ndarray]):
    """``(build, batch)`` for objective ``name``: ``build(**params)`` makes it with a tiny encoder, a log-mel
    frontend fitted on the clips and no augmentation (its tiny params updated by ``params``, torch seeded 0);
    ``batch`` holds each clip's 0.5-s crops."""
    import torch

    from audioemb.nn.encoders import build_encoder
    from audioemb.nn.frontend import LogMel
    from audioemb.nn.views import Views
    from audioemb.objectives import get_objective
    from audioemb.objectives.base import Batch
    from audioemb.train.data import random_crop

    cls = get_objective(name)
    fe = LogMel()
    fe.fit_stats([torch.from_numpy(w) for w in clips16k])
    rng = np.random.default_rng(0)
    wav = torch.from_numpy(np.stack([[random_crop(w, 8000, rng) for _ in range(cls.n_crops)] for w in clips16k]))

    def build(**kw):
        torch.manual_seed(0)
        return cls(build_encoder(cls.tiny_encoder), fe, Views({}, std=fe.std), **{**cls.tiny_params, **kw})

    return build, Batch(wav, 0, np.arange(len(wav)))


def fit_fixed_batch(obj, batch, steps: int, key: str, lr: float = 3e-3) -> list[float]:
    """Train an objective on one batch with the same random draws (views, masks, shifts) every step; the logged
    ``key`` at each step, for tests that a term trains."""
    import torch

    opt = torch.optim.Adam([p for p in obj.parameters() if p.requires_grad], lr=lr)
    seen = []
    for _ in range(steps):
        torch.manual_seed(0)
        out = obj.training_step(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        seen.append(out[key].item())
    return seen
