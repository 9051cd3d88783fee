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
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import audio as audio_io
from .modelfolder import ModelFolder, open_folder
from .registry import resolve

Layer = int | str | None  # None: last layer; int: that layer (negative counts from the end); "mean": all


@dataclass
class FrameEmbeddings:
    """Frame embeddings of one input, (frames, dim), with each frame's centre time in seconds."""

    embeddings: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass
class Window:
    """One fixed window of an input: ``audio`` (possibly zero-padded) starting at ``start`` samples,
    of which the first ``valid`` samples are real audio."""

    key: int
    index: int
    start: int
    valid: int
    audio: np.ndarray


def windows(blocks: Iterable[np.ndarray], window: int, min_len: int, key: int = 0) -> Iterator[Window]:
    """Cut a stream of mono blocks into consecutive ``window``-sample windows (the last one shorter)."""
    buf = np.zeros(0, dtype=np.float32)
    start = idx = 0
    for b in blocks:
        buf = np.concatenate([buf, b]) if len(buf) else np.asarray(b, dtype=np.float32)
        while len(buf) >= window:
            yield Window(key, idx, start, window, buf[:window])
            buf = buf[window:]
            start += window
            idx += 1
    if len(buf) or idx == 0:
        valid = len(buf)
        if valid < min_len:
            buf = np.concatenate([buf, np.zeros(min_len - valid, dtype=np.float32)])
        yield Window(key, idx, start, valid, buf)


@dataclass
class _Acc:
    """Per-input accumulator of window results."""

    weighted: np.ndarray | None = None
    weight: float = 0.0
    frames: list = field(default_factory=list)
    times: list = field(default_factory=list)


class Batcher:
    """Runs windows through a backend in batches of identical length; hands results to ``on_result``.

    At most ``max_pending`` windows wait; beyond that the fullest length group runs, even if small.
    """

    def __init__(self, run: Callable, batch_size: int, on_result: Callable, max_pending: int | None = None):
        self.run, self.batch_size, self.on_result = run, batch_size, on_result
        self.max_pending = max_pending or 4 * batch_size
        self.groups: dict[int, list[Window]] = defaultdict(list)
        self.n_pending = 0

    def add(self, w: Window) -> None:
        g = self.groups[len(w.audio)]
        g.append(w)
        self.n_pending += 1
        if len(g) >= self.batch_size:
            self._run(len(w.audio))
        while self.n_pending > self.max_pending:
            self._run(max(self.groups, key=lambda k: len(self.groups[k])))

    def flush(self) -> None:
        for length in sorted(self.groups):
            self._run(length)

    def _run(self, length: int) -> None:
        group = self.groups.pop(length, [])
        self.n_pending -= len(group)
        for s in range(0, len(group), self.batch_size):
            chunk = group[s:s + self.batch_size]
            emb, frames, layers = self.run(np.stack([w.audio for w in chunk]))
            for i, w in enumerate(chunk):
                self.on_result(w, emb[i], frames[i], None if layers is None else layers[:, i])


def pool_frames(frames: np.ndarray) -> np.ndarray:
    """The models' pooling: concat(mean over time, max over time) of (T, D) frames."""
    return np.concatenate([frames.mean(axis=0), frames.max(axis=0)])


class EmbeddingModel:
    """A loaded model: ``encode()`` audio files or arrays into clip or frame embeddings."""

    def __init__(self, folder: ModelFolder, backend):
        self.folder, self.backend = folder, backend
        cfg = folder.config
        self.config = cfg
        self.name: str = cfg["name"]
        self.sample_rate: int = int(cfg["sample_rate"])
        self.embedding_dim: int = int(cfg["embedding_dim"])
        self.frame_dim: int = int(cfg["frame_dim"])
        self.n_layers: int = int(cfg.get("n_layers", 1))
        inf = cfg["inference"]
        self.window = int(round(inf["window_s"] * self.sample_rate))
        self.min_len = int(round(inf["min_s"] * self.sample_rate))
        hop = cfg["frontend"]["hop_length"] * cfg["frame_hop"]
        self.frame_rate: float = self.sample_rate / hop
        self._frame_hop_samples = hop
        self._frame_offset = (cfg["frame_hop"] - 1) / 2 * cfg["frontend"]["hop_length"]

    def __repr__(self) -> str:
        return (f"EmbeddingModel({self.name!r}, dim={self.embedding_dim}, sample_rate={self.sample_rate}, "
                f"backend={self.backend.name!r})")

    # ------------------------------------------------------------------------------------------------
    def encode(self, x, sample_rate: int | None = None, batch_size: int = 32, normalize: bool = True,
               output: str = "clip", layer: Layer = None, errors: str = "raise"):
        """Embed a path, an array, or a list of either.

        Args:
            x: a file path, a waveform array ((samples,) or (samples, channels)), or a list of these.
            sample_rate: the rate of array inputs (None: already at ``self.sample_rate``); files carry
                their own rate. Anything else is resampled with soxr.
            batch_size: windows per model call.
            normalize: L2-normalise each clip (or frame) embedding.
            output: ``"clip"`` gives one vector per input, ``"frames"`` a :class:`FrameEmbeddings` per input.
            layer: None for the last layer; an int picks a layer (0 = first, -1 = last); ``"mean"``
                averages all layers. Clip embeddings of a chosen layer use the same pooling.
            errors: ``"raise"``: an input that cannot be decoded or embedded raises :class:`audio.AudioError`
                (or ValueError for arrays) naming it; ``"skip"``: its row is NaN (its frames None) and
                the call returns ``(result, [EncodeError, ...])``.

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
        results, failed = self._encode_items(items, sample_rate, batch_size, normalize, output, layer, errors)
        if output == "clip":
            nan = np.full(self.embedding_dim, np.nan, np.float32)
            results = [nan if r is None else r for r in results]
            arr = np.stack(results).astype(np.float32) if results else np.zeros((0, self.embedding_dim), np.float32)
            out = arr[0] if single else arr
        else:
            out = results[0] if single else results
        return (out, failed) if errors == "skip" else out

    def blocks(self, item, sample_rate: int | None = None, report: dict | None = None) -> Iterable[np.ndarray]:
        """Mono float32 blocks of a path or array at the model's rate (``report``: see :func:`audio.stream`)."""
        if isinstance(item, (str, os.PathLike)):
            return audio_io.stream(item, self.sample_rate, report=report)
        arr = _as_array(item)
        mono = audio_io.resample(arr, sample_rate or self.sample_rate, self.sample_rate)
        if report is not None:
            report.update(warnings=[], peak=float(np.max(np.abs(mono))) if len(mono) else 0.0)
        return [mono]

    def window_stream(self, item, key: int, sample_rate: int | None = None,
                      report: dict | None = None) -> Iterator[Window]:
        return windows(self.blocks(item, sample_rate, report), self.window, self.min_len, key)

    def check_layer(self, layer: Layer) -> None:
        """Raise ValueError unless ``layer`` is None, ``"mean"`` or a valid layer index of this model."""
        if layer is None or layer == "mean":
            return
        if not (isinstance(layer, (int, np.integer)) and -self.n_layers <= layer < self.n_layers):
            raise ValueError(f"layer must be None, 'mean' or an int in [-{self.n_layers}, {self.n_layers - 1}] "
                             f"for model {self.name!r}, got {layer!r}")

    def make_collector(self, normalize: bool, layer: Layer, want_frames: bool = False):
        """(on_result, finish) for windows tagged with input keys.

        ``on_result(window, emb, frames, layers)`` accumulates one window's outputs; ``finish(key)`` returns
        ``(clip_embedding, FrameEmbeddings or None)`` for an input whose windows have all been seen, and
        ``finish(key, discard=True)`` drops an input's partial results.
        """
        accs: dict[int, _Acc] = defaultdict(_Acc)
        want_layers = layer is not None

        def on_result(w: Window, emb: np.ndarray, frames: np.ndarray, layers: np.ndarray | None) -> None:
            if want_layers:
                frames = _select_layer(layers, layer, self.n_layers)
                emb = pool_frames(frames)
            acc = accs[w.key]
            weight = max(w.valid, 1)
            acc.weighted = emb * weight if acc.weighted is None else acc.weighted + emb * weight
            acc.weight += weight
            if want_frames:
                t = w.start + self._frame_offset + np.arange(len(frames)) * self._frame_hop_samples
                keep = t < w.start + max(w.valid, 1)
                keep[0] = True
                acc.frames.append((w.index, frames[keep]))
                acc.times.append((w.index, t[keep] / self.sample_rate))

        def finish(key: int, discard: bool = False):
            acc = accs.pop(key, None)
            if discard or acc is None:
                return None, None
            clip = (acc.weighted / acc.weight).astype(np.float32)
            fr = None
            if want_frames:
                # windows may finish out of order (batches group equal lengths): restore time order
                f = np.concatenate([x for _, x in sorted(acc.frames, key=lambda t: t[0])]).astype(np.float32)
                ts = np.concatenate([x for _, x in sorted(acc.times, key=lambda t: t[0])]).astype(np.float32)
                fr = FrameEmbeddings(_l2(f) if normalize else f, ts)
            return (_l2(clip) if normalize else clip), fr

        return on_result, finish

    def run_batch(self, layer: Layer) -> Callable:
        return lambda wav: self.backend.run(wav, layers=layer is not None)

    def _encode_items(self, items: Sequence, sample_rate, batch_size, normalize, output, layer,
                      errors: str) -> tuple[list, list[EncodeError]]:
        on_result, finish = self.make_collector(normalize, layer, want_frames=output == "frames")
        batcher = Batcher(self.run_batch(layer), batch_size, on_result)
        failed: dict[int, EncodeError] = {}
        peaks: dict[int, float] = {}
        for key, item in enumerate(items):
            report: dict = {}
            try:
                for w in self.window_stream(item, key, sample_rate, report):
                    batcher.add(w)
            except (audio_io.AudioError, ValueError) as e:
                if errors == "raise":
                    raise
                failed[key] = EncodeError(key, _describe(item), getattr(e, "reason", str(e)))
            peaks[key] = report.get("peak", 0.0)
        batcher.flush()
        pick = 0 if output == "clip" else 1
        out = []
        for k, item in enumerate(items):
            clip, fr = finish(k, discard=k in failed)
            if k not in failed and (reason := nonfinite_reason(clip, fr, peaks[k])):
                if errors == "raise":
                    raise audio_io.AudioError(_describe(item), reason)
                failed[k] = EncodeError(k, _describe(item), reason)
                clip = fr = None
            out.append(clip if pick == 0 else fr)
        return out, sorted(failed.values(), key=lambda e: e.index)


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


def _l2(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def _is_single(x) -> bool:
    if isinstance(x, (str, os.PathLike)):
        return True
    if isinstance(x, (list, tuple)):
        return False
    return hasattr(x, "__array__") or isinstance(x, np.ndarray)


def _as_array(x) -> np.ndarray:
    """(samples,) or (samples, channels); a (channels, samples) array with few channels is transposed."""
    a = np.asarray(x)
    if a.ndim == 2 and a.shape[0] <= 64 < a.shape[1]:
        a = a.T
    if a.ndim == 2 and a.shape[1] > 64:
        raise ValueError(f"ambiguous 2-D audio of shape {a.shape}: pass (samples, channels), or a list of "
                         "1-D arrays for a batch")
    if a.ndim not in (1, 2):
        raise ValueError(f"audio arrays must be 1-D or 2-D, got shape {a.shape}")
    return a


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
