"""Decoding audio files into mono float32 at a chosen sample rate, in bounded memory.

Files are decoded with soundfile (libsndfile: wav, flac, ogg/vorbis, opus, mp3, aiff, ...), mixed down
to mono block by block and resampled with soxr's streaming resampler, so a one-hour file is never held
as float64 or at its original channel count. Every failure is raised as :class:`AudioError`, which names
the file and the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd",
     ".caf", ".w64", ".rf64", ".wv"}
)
BLOCK_FRAMES = 1 << 16  # frames read per block at the file's own rate


class AudioError(Exception):
    """A file that could not be turned into audio; ``str()`` names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    """What the file's header says, before any decoding."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header; raise :class:`AudioError` for empty, unreadable or non-audio files."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise AudioError(path, f"cannot read file ({e.strerror or e})") from None
    if p.is_dir():
        raise AudioError(path, "is a folder, not a file")
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        i = sf.info(str(p))
    except Exception as e:  # libsndfile raises LibsndfileError/RuntimeError with its own message
        raise AudioError(path, f"not a readable audio file ({_sf_reason(e)})") from None
    if i.samplerate <= 0:
        raise AudioError(path, f"invalid sample rate {i.samplerate}")
    if i.channels <= 0:
        raise AudioError(path, f"invalid channel count {i.channels}")
    return AudioInfo(str(p), int(i.samplerate), int(i.channels), int(i.frames), i.format, i.subtype)


def _sf_reason(e: Exception) -> str:
    msg = str(e).strip()
    # libsndfile prefixes messages with "Error opening '<path>': "; the path is already in AudioError
    if ": " in msg and msg.startswith("Error opening"):
        msg = msg.split(": ", 1)[1]
    return msg or type(e).__name__


def _clean(block: np.ndarray) -> tuple[np.ndarray, int]:
    """Mix a (frames, channels) float32 block to mono and zero non-finite samples; return (mono, n_bad)."""
    mono = block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block.astype(np.float32, copy=False)
    bad = ~np.isfinite(mono)
    n_bad = int(bad.sum())
    if n_bad:
        mono = np.where(bad, np.float32(0.0), mono)
    return mono, n_bad


def stream(
    path: str | os.PathLike, sample_rate: int | None = None, block_frames: int = BLOCK_FRAMES
) -> Iterator[np.ndarray]:
    """Yield mono float32 blocks of a file, resampled to ``sample_rate`` (None keeps the file's rate).

    Memory stays bounded by ``block_frames`` whatever the file's length or channel count. Raises
    :class:`AudioError` for files with no frames, files that are entirely NaN/Inf, and decode errors
    (truncated or corrupt data). Sporadic NaN/Inf samples are replaced by zeros.
    """
    meta = info(path)
    if meta.frames == 0:
        raise AudioError(path, "no audio frames (zero-length audio)")
    target = int(sample_rate or meta.sample_rate)
    resampler = None
    if target != meta.sample_rate:
        resampler = soxr.ResampleStream(meta.sample_rate, target, 1, dtype="float32", quality="HQ")
    n_read = n_bad = 0
    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                block = f.read(block_frames, dtype="float32", always_2d=True)
                last = len(block) < block_frames
                mono, bad = _clean(block)
                n_read += len(mono)
                n_bad += bad
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=last)
                if len(mono):
                    yield mono
                if last:
                    break
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(path, f"decoding failed after {n_read} frames ({_sf_reason(e)})") from None
    if n_read == 0:
        raise AudioError(path, "no audio frames could be decoded (truncated file?)")
    if n_bad == n_read:
        raise AudioError(path, "every sample is NaN or Inf")


def load(path: str | os.PathLike, sample_rate: int | None = None) -> np.ndarray:
    """Decode a whole file to a mono float32 array at ``sample_rate`` (None keeps the file's rate)."""
    blocks = list(stream(path, sample_rate))
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Mix an in-memory array down to mono float32 and resample it with soxr.

    ``audio`` is (samples,) or (samples, channels), as soundfile returns it. Integer arrays are scaled
    to [-1, 1) by their dtype's range.
    """
    x = np.asarray(audio)
    if x.ndim not in (1, 2):
        raise ValueError(f"audio must be 1-D (samples) or 2-D (samples, channels), got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        x = _int_to_float(x)
    mono, n_bad = _clean(x.astype(np.float32, copy=False))
    if len(mono) == 0:
        raise ValueError("audio has no samples")
    if n_bad == len(mono):
        raise ValueError("every sample is NaN or Inf")
    if orig_rate <= 0:
        raise ValueError(f"invalid sample rate {orig_rate}")
    if orig_rate != target_rate:
        mono = soxr.resample(mono, orig_rate, target_rate, quality="HQ").astype(np.float32, copy=False)
    return mono


def _int_to_float(x: np.ndarray) -> np.ndarray:
    ii = np.iinfo(x.dtype)
    if ii.min == 0:  # unsigned: centre first (8-bit wav convention)
        return ((x.astype(np.float32) - (ii.max + 1) / 2) / ((ii.max + 1) / 2)).astype(np.float32)
    return (x.astype(np.float32) / float(-ii.min)).astype(np.float32)


def is_audio_path(path: str | os.PathLike) -> bool:
    """True for file names with an audio extension this package tries to decode."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def find_audio(root: str | os.PathLike) -> list[Path]:
    """All files under ``root`` (recursively, following no symlinked folders) with an audio extension.

    Sorted by their path relative to ``root`` so that runs are reproducible.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or folder")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in filenames:
            if is_audio_path(fn):
                out.append(Path(dirpath) / fn)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())
