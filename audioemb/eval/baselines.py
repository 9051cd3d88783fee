"""Reference points every model is scored beside: log-mel mean+std, and the same encoder untrained
(a mean over several random seeds)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

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
        self.cache_key = "logmel-" + _sha(self.frontend)

    def encode(self, paths, batch_size: int = 32, **_) -> np.ndarray:
        out = []
        for p in paths:
            m = log_mel(audio_io.load(p, self.sample_rate), **self.frontend)
            out.append(np.concatenate([m.mean(axis=1), m.std(axis=1)]))
        return np.stack(out).astype(np.float32)


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class _RandomInitBackend:
    """The model's architecture and frontend statistics with freshly initialised encoder weights; a model
    that standardises its embedding gets a standardiser refitted on the same clips (from ``corpora``)."""

    name = "torch-random-init"

    def __init__(self, folder: ModelFolder, seed: int = 0, corpora: tuple = ()):
        import torch

        from ..nn.export import load_module
        from ..nn.model import AudioEmbedder

        trained = load_module(folder)
        torch.manual_seed(seed)
        self.module = AudioEmbedder.from_config(folder.config["frontend"], folder.config["encoder"]).eval()
        self.module.frontend.load_state_dict(trained.frontend.state_dict())
        self.torch = torch
        state = sorted(trained.frontend.state_dict().items())
        stats = hashlib.sha256(b"".join(v.numpy().tobytes() for _, v in state))
        norm = self.norm = folder.config.get("embedding_norm")
        self._corpora = corpora
        self._trained_files = (folder.config.get("training", {}).get("data") or {}).get("file_list_sha256")
        if norm:  # fail now, not mid-evaluation, when the fitting clips' corpus is missing
            from ..train.standardize import refit_waves

            refit_waves(norm, corpora, self.module.sample_rate, check_only=True, trained_files=self._trained_files)
        # same architecture, frontend statistics and seed -> same weights: models that share them share one score
        self.key = "random-init-" + _sha([folder.config["frontend"], folder.config["encoder"], stats.hexdigest(), seed,
                                          *([norm] if norm else [])])

    def ready(self):
        """The module, its standardiser fitted first (once) when the model standardises its embedding."""
        if self.norm and self.module.embed_norm is None:
            from ..nn.embed_norm import fit_standardizer
            from ..train.standardize import refit_waves

            waves = refit_waves(self.norm, self._corpora, self.module.sample_rate, trained_files=self._trained_files)
            self.module.embed_norm = fit_standardizer(self.module, waves)
        return self.module

    def run(self, wav: np.ndarray, layers: bool = False):
        self.ready()
        with self.torch.inference_mode():
            e, f, h = self.module(self.torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)))
        return e.numpy(), f.numpy(), (h.numpy() if layers else None)


RANDOM_SEEDS = 3


def random_init_model(name_or_folder, seed: int = 0, tag: str = "", onnx_dir: Path | None = None,
                      corpora: tuple = (), label: str | None = None) -> EmbeddingModel:
    """An :class:`EmbeddingModel` with ``name_or_folder``'s architecture and frontend statistics but freshly
    initialised encoder weights (``torch.manual_seed(seed)``), named ``<name>@random-init<tag>`` (``label`` in
    place of the model's name, when two models of one name are scored together). A model with
    an ``embedding_norm`` needs the corpus it was fitted on among ``corpora`` (its standardiser is refitted).

    With ``onnx_dir`` the untrained model is exported once to ``onnx_dir/<key>`` and run with onnxruntime
    (several times faster than torch on CPU, for scoring many clips)."""
    folder = open_folder(resolve(name_or_folder), verify=("model.safetensors",))
    name = f"{label or folder.model_config.name}@random-init{tag}"
    backend = _RandomInitBackend(folder, seed, tuple(corpora))
    if onnx_dir is not None:
        m = _as_onnx(backend, Path(onnx_dir) / backend.key[:40], name)
    else:
        m = EmbeddingModel(ModelFolder(folder.path, dict(folder.config, name=name)), backend)
    m.name = name
    m.cache_key = backend.key
    return m


def _as_onnx(backend: _RandomInitBackend, dest: Path, name: str) -> EmbeddingModel:
    from ..nn.export import save_model
    from ..runtime import load

    if not (dest / "config.json").is_file():
        rng = np.random.default_rng(0)
        waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 40000)]
        # a folder of its own: two evaluations sharing the cache (two exports at once) may write the same model
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent))
        try:
            save_model(backend.ready(), tmp, {"name": name, "objective": {"name": "none (random init)"},
                                              **({"embedding_norm": backend.norm} if backend.norm else {})}, waves)
            try:
                tmp.rename(dest)
            except OSError:  # the other writer finished first: same seed and architecture, so the same weights
                if not (dest / "config.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return load(dest)


def random_init_models(name_or_folder, seeds: int = RANDOM_SEEDS, onnx_dir: Path | None = None,
                       corpora: tuple = (), label: str | None = None) -> list:
    """The random-init baseline under ``seeds`` seeds (0, 1, ...): :func:`~audioemb.eval.run.evaluate` merges
    them into one ``<name>@random-init`` row, mean and std over seeds."""
    from .run import SEED_SEP

    return [random_init_model(name_or_folder, s, tag=f"{SEED_SEP}{s}" if seeds > 1 else "", onnx_dir=onnx_dir,
                              corpora=corpora, label=label) for s in range(seeds)]


def trained_model(name_or_folder) -> EmbeddingModel:
    """A model loaded for scoring (onnxruntime), keyed for the evaluation cache by its weights and windowing."""
    from ..runtime import load

    m = load(name_or_folder)
    c = m.config
    m.cache_key = "model-" + _sha([c.get("files"), c.get("sample_rate"), c.get("inference"), c.get("frontend")])
    return m
