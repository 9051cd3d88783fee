"""Reference points every model is scored beside: log-mel mean+std, and the same encoder untrained."""

from __future__ import annotations

import numpy as np

from .. import audio as audio_io
from ..dsp import log_mel
from ..modelfolder import ModelFolder, open_folder
from ..registry import resolve
from ..runtime import EmbeddingModel

LOGMEL_BASELINE = "logmel-stats"


class LogMelStats:
    """Per-band mean and std over time of the log-mel spectrogram (128 dims for 64 bands); no learning.

    Its features are standardised per dimension over the scored set before cosine similarity, since raw
    log-mel statistics are far from centred (this helps the baseline).
    """

    name = LOGMEL_BASELINE
    standardize = True

    def __init__(self, frontend: dict | None = None):
        self.frontend = dict(frontend or {"sample_rate": 16000})
        self.sample_rate = int(self.frontend.get("sample_rate", 16000))

    def encode(self, paths, batch_size: int = 32, **_) -> np.ndarray:
        out = []
        for p in paths:
            m = log_mel(audio_io.load(p, self.sample_rate), **self.frontend)
            out.append(np.concatenate([m.mean(axis=1), m.std(axis=1)]))
        return np.stack(out).astype(np.float32)


class _RandomInitBackend:
    """The model's architecture and frontend statistics with freshly initialised encoder weights (seed 0)."""

    name = "torch-random-init"

    def __init__(self, folder: ModelFolder, seed: int = 0):
        import torch

        from ..nn.export import load_module
        from ..nn.model import AudioEmbedder

        trained = load_module(folder)
        torch.manual_seed(seed)
        self.module = AudioEmbedder.from_config(folder.config["frontend"], folder.config["encoder"]).eval()
        self.module.frontend.load_state_dict(trained.frontend.state_dict())
        self.torch = torch

    def run(self, wav: np.ndarray, layers: bool = False):
        with self.torch.inference_mode():
            e, f, h = self.module(self.torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)))
        return e.numpy(), f.numpy(), (h.numpy() if layers else None)


def random_init_model(name_or_folder: str, seed: int = 0) -> EmbeddingModel:
    """An :class:`EmbeddingModel` with ``name_or_folder``'s architecture but untrained encoder weights."""
    folder = open_folder(resolve(name_or_folder), verify=("model.safetensors",))
    cfg = dict(folder.config, name=f"{folder.config['name']}@random-init")
    m = EmbeddingModel(ModelFolder(folder.path, cfg), _RandomInitBackend(folder, seed))
    return m
