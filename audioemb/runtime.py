"""``audioemb.load()`` and ``EmbeddingModel.encode()``: deterministic clip and frame embeddings.

Audio is cut into fixed windows of ``window_s`` seconds (config.json, ``inference``), the same way on every
run: no random crops. A window shorter than ``min_s`` (a short file, or nothing else) is zero-padded to
``min_s``. Each window gives frame embeddings and a pooled window embedding (mean and max over its frames,
concatenated); a clip's embedding is the duration-weighted mean of its window embeddings. Windows are
batched only with windows of exactly the same length, so an embedding never depends on what else was in
the batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import audio as audio_io
from ._decode import Window, windows
from .modelfolder import ModelFolder, open_folder
from .registry import resolve
from .stream import Encoded, encode_stream, pool_frames

__all__ = ["EmbeddingModel", "EncodeError", "FrameEmbeddings", "Layer", "Window", "load", "pool_frames", "windows"]

Layer = int | str | None  # None: last layer; int: that layer (negative counts from the end); "mean": all


@dataclass
class FrameEmbeddings:
    """Frame embeddings of one input, (frames, dim), with each frame's centre time in seconds."""

    embeddings: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)


class EmbeddingModel:
    """A loaded model: ``encode()`` audio files or arrays into clip or frame embeddings."""

    def __init__(self, folder: ModelFolder, backend):
        self.folder, self.backend = folder, backend
        self.config = folder.config  # the raw JSON dict; the typed, checked view is folder.model_config
        mc = folder.model_config
        self.name: str = mc.name
        self.sample_rate: int = mc.sample_rate
        self.embedding_dim: int = mc.embedding_dim
        self.frame_dim: int = mc.frame_dim
        self.n_layers: int = mc.n_layers
        self.window = int(round(mc.inference.window_s * self.sample_rate))
        self.min_len = int(round(mc.inference.min_s * self.sample_rate))
        hop = mc.frontend.hop_length * mc.frame_hop
        self.frame_rate: float = self.sample_rate / hop
        self.frame_hop_samples: int = hop  # samples between frames; the first frame's centre is frame_offset
        self.frame_offset: float = (mc.frame_hop - 1) / 2 * mc.frontend.hop_length

    def __repr__(self) -> str:
        return (f"EmbeddingModel({self.name!r}, dim={self.embedding_dim}, sample_rate={self.sample_rate}, "
                f"backend={self.backend.name!r})")

    # ------------------------------------------------------------------------------------------------
    def encode(self, x, sample_rate: int | None = None, batch_size: int = 32, normalize: bool = True,
               output: str = "clip", layer: Layer = None, errors: str = "raise", workers: int = 0):
        """Embed a path, an array, or a list of either.

        Args:
            x: a file path, a waveform array ((samples,) or (samples, channels)), or a list of these.
            sample_rate: the rate of array inputs (None: already at ``self.sample_rate``); files carry
                their own rate. Anything else is resampled with soxr.
            batch_size: windows per model call.
            normalize: L2-normalise each clip (or frame) embedding.
            output: ``"clip"`` gives one vector per input, ``"frames"`` a :class:`FrameEmbeddings` per input.
            layer: None for the last layer; an int picks a layer (0 = first, -1 = last); ``"mean"``
                averages all layers. Clip embeddings of a chosen layer use the same pooling, without the
                per-dimension standardisation of a model with ``embedding_norm`` (fitted on its default
                embedding only).
            errors: ``"raise"``: an input that cannot be decoded or embedded raises :class:`audio.AudioError`
                (or ValueError for arrays) naming it; ``"skip"``: its row is NaN (its frames None) and
                the call returns ``(result, [EncodeError, ...])``.
            workers: decoder processes for file inputs (0: decode in this process); see :meth:`encode_stream`.

        Returns:
            ``(N, D)`` float32 for a list, ``(D,)`` for one input (``output="clip"``); a list of
            :class:`FrameEmbeddings` or one of them (``output="frames"``). Every returned embedding is finite.
        """
        if output not in ("clip", "frames"):
            raise ValueError(f"output must be 'clip' or 'frames', got {output!r}")
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
        self.check_layer(layer)
        single = _is_single(x)
        items = [x] if single else list(x)
        results, failed = [], []
        for r in self.encode_stream(enumerate(items), sample_rate=sample_rate, batch_size=batch_size,
                                    normalize=normalize, layer=layer, frames=output == "frames", workers=workers,
                                    ordered=True):
            if r.error:
                if errors == "raise":
                    if isinstance(r.exception, (audio_io.AudioError, ValueError)):
                        raise r.exception
                    raise audio_io.AudioError(_describe(items[r.key]), r.error)
                failed.append(EncodeError(r.key, _describe(items[r.key]), r.error))
            results.append(r.clip if output == "clip" else r.frames)
        if output == "clip":
            nan = np.full(self.embedding_dim, np.nan, np.float32)
            results = [nan if r is None else r for r in results]
            arr = np.stack(results).astype(np.float32) if results else np.zeros((0, self.embedding_dim), np.float32)
            out = arr[0] if single else arr
        else:
            out = results[0] if single else results
        return (out, failed) if errors == "skip" else out

    def encode_stream(self, items: Iterable[tuple[Any, Any]], **kwargs) -> Iterator[Encoded]:
        """Embed ``(key, path or array)`` pairs as a stream, one :class:`audioemb.stream.Encoded` per input
        (``key, clip, frames | error``); see :func:`audioemb.stream.encode_stream` for the options
        (``workers`` decoder processes, ``segments``, ``ordered``, ...). The one path every driver uses."""
        return encode_stream(self, items, **kwargs)

    def check_layer(self, layer: Layer) -> None:
        """Raise ValueError unless ``layer`` is None, ``"mean"`` or a valid layer index of this model."""
        if layer is None or layer == "mean":
            return
        if not (isinstance(layer, (int, np.integer)) and -self.n_layers <= layer < self.n_layers):
            raise ValueError(f"layer must be None, 'mean' or an int in [-{self.n_layers}, {self.n_layers - 1}] "
                             f"for model {self.name!r}, got {layer!r}")

    def select_layer(self, layers: np.ndarray, layer: Layer) -> np.ndarray:
        """One layer's frames (or the mean over layers) of a window's (layers, T, D) outputs."""
        return _select_layer(layers, layer, self.n_layers)


@dataclass
class EncodeError:
    """An input of ``encode(..., errors="skip")`` that gave no embedding: its position, name and reason."""

    index: int
    source: str
    reason: str


def _describe(item) -> str:
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    return f"array of shape {getattr(np.asarray(item), 'shape', '?')}"


def nonfinite_reason(clip: np.ndarray | None, frames: FrameEmbeddings | None, peak: float = 0.0) -> str | None:
    """Why an embedding cannot be used (NaN or Inf in it), or None when it is finite."""
    bad = clip is not None and not np.isfinite(clip).all()
    bad = bad or (frames is not None and not np.isfinite(frames.embeddings).all())
    if not bad:
        return None
    hint = f"; its peak sample is {peak:.3g}, far outside [-1, 1]" if peak > 1e3 else ""
    return f"the model gave a non-finite embedding (NaN or Inf){hint}"


def _select_layer(layers: np.ndarray, layer: Layer, n_layers: int) -> np.ndarray:
    if layer == "mean":
        return layers.mean(axis=0)
    if isinstance(layer, (int, np.integer)) and -n_layers <= layer < n_layers:
        return layers[layer]
    raise ValueError(f"layer must be None, 'mean' or an int in [-{n_layers}, {n_layers - 1}], got {layer!r}")


def _is_single(x) -> bool:
    if isinstance(x, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(x, "read"):
        return True  # bytes and file objects are refused as one input, with the way to decode them
    if isinstance(x, (list, tuple)):
        return False
    return hasattr(x, "__array__") or isinstance(x, np.ndarray)


def load(name_or_folder: str | os.PathLike | None = None, backend: str = "onnx", threads: int | None = None,
         **backend_kwargs) -> EmbeddingModel:
    """Load a model by shipped name, folder or ``hf-hub:`` id (None: the default model).

    ``backend="onnx"`` needs only onnxruntime; ``backend="torch"`` rebuilds the torch module (the
    [train] extra). The architecture always comes from the folder's config.json, checked against the
    sha256 of its weight files.
    """
    folder_path: Path = resolve(name_or_folder)
    if backend == "onnx":
        from .backends import OnnxBackend

        folder = open_folder(folder_path, verify=("model.onnx",))
        return EmbeddingModel(folder, OnnxBackend(folder, threads=threads, **backend_kwargs))
    if backend == "torch":
        from .errors import require

        require("torch", "backend='torch'", "train")
        from .backends import TorchBackend

        folder = open_folder(folder_path, verify=("model.safetensors",))
        return EmbeddingModel(folder, TorchBackend(folder, threads=threads, **backend_kwargs))
    raise ValueError(f"backend must be 'onnx' or 'torch', got {backend!r}")
