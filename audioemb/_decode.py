"""Decoding one source into fixed windows: the messages :func:`audioemb.stream.encode_stream` consumes,
produced inline or in a decoder process (:mod:`audioemb._decode_pool`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import audio as audio_io

CHUNK_SAMPLES = 1 << 18  # decoded samples per message from a decoder process


@dataclass
class Window:
    """One fixed window of an input: ``audio`` (possibly zero-padded) starting at ``start`` samples,
    of which the first ``valid`` samples are real audio."""

    key: Any
    index: int
    start: int
    valid: int
    audio: np.ndarray


def windows(blocks: Iterable[np.ndarray], window: int, min_len: int, key: Any = 0) -> Iterator[Window]:
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


def segment_cuts(blocks: Iterable[np.ndarray], seg: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start sample, length, audio) of consecutive ``seg``-sample segments of a stream of blocks.

    A tail shorter than ``seg / 2`` is replaced by the last ``seg`` samples (overlapping the previous
    segment); one shorter than ``seg / 10`` is dropped (the previous segment already covers it).
    """
    prev = None
    for w in windows(blocks, seg, 1):
        if prev is not None and w.valid < seg / 10:
            return
        if prev is not None and w.valid < seg / 2:
            yield w.start + w.valid - seg, seg, np.concatenate([prev[w.valid:], w.audio[:w.valid]])
        else:
            yield w.start, w.valid, w.audio[:w.valid]
        prev = w.audio


@dataclass(frozen=True)
class DecodeSpec:
    """How a source is decoded and cut: the model's rate, window and minimum length; ``segments`` (samples)
    cuts a source into segments first, each windowed and pooled on its own."""

    sample_rate: int
    window: int
    min_len: int
    segments: int | None = None
    array_rate: int | None = None  # the rate of array sources (None: already at ``sample_rate``)
    model: str | None = None  # lanes: the model folder each decoder process runs its windows through
    layers: bool = False  # lanes: also return every layer's frames


def decode(seq: int, source, spec: DecodeSpec, inline: bool = True) -> Iterator[tuple]:
    """Messages that describe one source: ``("head", seq, AudioInfo | None)``, ``("wins", seq, [(sub, index,
    start, valid, audio)])`` ..., then ``("end", seq, n_windows, n_samples, warnings, peak, spans)`` or
    ``("err", seq, reason, exception or None)``. Runs inline or in a decoder process."""
    buf: list[tuple] = []
    size = n = 0
    spans: list[tuple[int, int]] = []
    report: dict = {}
    try:
        if isinstance(source, (str, os.PathLike)):
            meta, blocks = audio_io.open_stream(source, spec.sample_rate, report=report)  # one open per file
            yield "head", seq, meta
        else:
            yield "head", seq, None
            mono = audio_io.resample(_as_array(source), spec.array_rate or spec.sample_rate, spec.sample_rate)
            report.update(warnings=[], peak=float(np.max(np.abs(mono))) if len(mono) else 0.0)
            blocks = [mono]
        parts = _segmented(blocks, spec.segments, spans) if spec.segments else iter([(0, blocks)])
        for sub, sub_blocks in parts:
            for w in windows(sub_blocks, spec.window, spec.min_len):
                buf.append((sub, w.index, w.start, w.valid, w.audio))
                size += len(w.audio)
                n += 1
                if size >= CHUNK_SAMPLES:
                    yield "wins", seq, buf
                    buf, size = [], 0
        if buf:
            yield "wins", seq, buf
        samples = max((s + length for s, length in spans), default=0) if spec.segments else None
        yield "end", seq, n, samples, report.get("warnings", []), report.get("peak", 0.0), spans
    except (audio_io.AudioError, ValueError) as e:
        yield "err", seq, getattr(e, "reason", str(e)), e if inline else None
    except Exception as e:  # a decoder bug must not stop the job: report it with the source
        yield "err", seq, f"{type(e).__name__}: {e}", e if inline else None


def _segmented(blocks: Iterable[np.ndarray], seg: int, spans: list) -> Iterator[tuple[int, list[np.ndarray]]]:
    """(segment number, [its audio]) of :func:`segment_cuts`, recording each (start, length) in ``spans``."""
    for k, (start, length, audio) in enumerate(segment_cuts(blocks, seg)):
        spans.append((start, length))
        yield k, [audio]


def _as_array(x) -> np.ndarray:
    """(samples,) or (samples, channels); a (channels, samples) array with few channels is transposed."""
    if isinstance(x, (bytes, bytearray, memoryview, str)) or hasattr(x, "read"):
        raise ValueError(f"cannot embed {type(x).__name__}: give a file path, a waveform array (with sample_rate=), "
                         "or a list of these (for encoded bytes or a file object, decode first, e.g. "
                         "soundfile.read(io.BytesIO(data)))")
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"audio arrays must hold real numbers, got dtype {a.dtype}")
    if a.ndim == 2 and a.shape[0] <= 64 < a.shape[1]:
        a = a.T
    if a.ndim == 2 and a.shape[1] > 64:
        raise ValueError(f"ambiguous 2-D audio of shape {a.shape}: pass (samples, channels), or a list of "
                         "1-D arrays for a batch")
    if a.ndim not in (1, 2):
        raise ValueError(f"audio arrays must be 1-D or 2-D, got shape {a.shape}")
    return a
