"""Audio files of a collection for the browser: safe path resolution, transcoding and waveform thumbnails.

Only paths the index records are served, and only when they resolve (symlinks followed) inside the
collection's root. Formats a browser plays natively (WAV PCM, FLAC, Ogg Vorbis/Opus, MP3) are sent as they
are, with HTTP range requests; anything else libsndfile reads (AIFF, AU, CAF, W64, WavPack, ADPCM WAV, ...)
and the formats only FFmpeg decodes (the ``[av]`` extra: AAC in MP4, WMA, ...) are transcoded once to FLAC in
a cache folder and that file is served with ranges.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import AudioError, open_reader
from ..audio import info as audio_info
from ..fsio import atomic_write, pid_alive

NATIVE = {".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
          ".mp3": "audio/mpeg"}
WAV_NATIVE_SUBTYPES = {"PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "ULAW", "ALAW"}


class PathRefused(Exception):
    """A requested path that is not served: ``status`` is 404 (unknown) or 403 (outside the root)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def safe_file(root: Path, rel: str, known: set[str] | dict) -> Path:
    """The file ``rel`` of the collection: it must be one the index records and resolve inside ``root``."""
    if rel not in known:
        raise PathRefused(404, f"{rel!r} is not a file of this index")
    base = root.resolve()
    p = (base / rel).resolve()
    if not p.is_relative_to(base):
        raise PathRefused(403, f"{rel!r} resolves outside the collection root (symlink or '..'); refused")
    if not p.is_file():
        raise PathRefused(404, f"{rel!r} is in the index but no longer on disk")
    return p


def browser_media_type(path: Path) -> str | None:
    """The MIME type a browser plays ``path`` as, or None when it has to be transcoded."""
    ext = path.suffix.lower()
    if ext in NATIVE:
        return NATIVE[ext]
    if ext in (".wav", ".wave"):
        try:
            sub = audio_info(path).subtype
        except AudioError:
            return None
        return "audio/wav" if sub in WAV_NATIVE_SUBTYPES else None
    return None


CACHE_PREFIX = "audioemb-serve-"


def transcode_cache() -> tempfile.TemporaryDirectory:
    """A temporary folder for one server's transcoded files, named after its process id; folders that servers
    no longer running left behind (killed, so their cleanup never ran) are removed first."""
    for d in Path(tempfile.gettempdir()).glob(f"{CACHE_PREFIX}*-*"):
        pid = d.name[len(CACHE_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and d.is_dir() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{CACHE_PREFIX}{os.getpid()}-")


class Transcoder:
    """Transcodes files a browser cannot play to FLAC (PCM_16; WAV beyond 8 channels) in ``cache``, once."""

    def __init__(self, cache: Path):
        self.cache = Path(cache)
        self.cache.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, path: Path) -> tuple[Path, str]:
        """(playable file, MIME type) for ``path``; raises :class:`AudioError` if it cannot be decoded."""
        st = path.stat()
        key = hashlib.sha1(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]
        meta = audio_info(path)
        fmt, ext, mime = ("FLAC", "flac", "audio/flac") if meta.channels <= 8 else ("WAV", "wav", "audio/wav")
        out = self.cache / f"{key}.{ext}"
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if not out.exists():
                def transcode(tmp: Path) -> None:
                    with open_reader(path) as src, sf.SoundFile(str(tmp), "w", src.samplerate, src.channels,
                                                                      "PCM_16", format=fmt) as dst:
                        while len(block := src.read(1 << 16, dtype="float32", always_2d=True)):
                            dst.write(np.clip(block, -1.0, 1.0))

                try:
                    atomic_write(out, transcode)
                except Exception as e:
                    raise AudioError(path, f"cannot be transcoded for the browser ({e})") from None
        return out, mime


@lru_cache(maxsize=4096)
def _peaks_cached(path: str, size: int, mtime_ns: int, start: float, end: float, buckets: int) -> tuple:
    with open_reader(path) as f:
        sr, total = f.samplerate, f.frames
        a = min(max(int(start * sr), 0), total)
        b = total if end <= 0 else min(max(int(end * sr), a), total)
        n = b - a
        lo, hi = np.zeros(buckets, np.float32), np.zeros(buckets, np.float32)
        if n <= 0:
            return tuple(lo), tuple(hi)
        f.seek(a)
        at = 0
        edges = np.linspace(0, n, buckets + 1).astype(np.int64)
        while at < n:
            block = f.read(min(1 << 16, n - at), dtype="float32", always_2d=True)
            if not len(block):
                break
            mono = np.nan_to_num(block.mean(axis=1))
            idx = np.searchsorted(edges, at + np.arange(len(mono)), side="right") - 1
            idx = np.clip(idx, 0, buckets - 1)
            np.minimum.at(lo, idx, mono)
            np.maximum.at(hi, idx, mono)
            at += len(mono)
    return tuple(lo.round(4)), tuple(hi.round(4))


def peaks(path: Path, start: float = 0.0, end: float = 0.0, buckets: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Per-bucket min and max of the mono signal between ``start`` and ``end`` s (0 = to the end); cached."""
    st = path.stat()
    try:
        lo, hi = _peaks_cached(str(path), st.st_size, st.st_mtime_ns, round(start, 3), round(end, 3), buckets)
    except Exception as e:
        raise AudioError(path, f"cannot draw its waveform ({e})") from None
    return np.asarray(lo), np.asarray(hi)


def waveform_svg(lo: np.ndarray, hi: np.ndarray, width: int = 240, height: int = 48) -> str:
    """A waveform thumbnail as a small SVG: the min/max envelope, scaled to the segment's own peak."""
    scale = max(float(np.max(np.abs(np.r_[lo, hi]))), 1e-4)
    xs = np.linspace(0, width, len(lo))
    mid = height / 2
    top = [f"{x:.1f},{mid - h / scale * mid * 0.95:.1f}" for x, h in zip(xs, hi)]
    bottom = [f"{x:.1f},{mid - v / scale * mid * 0.95:.1f}" for x, v in zip(xs[::-1], lo[::-1])]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><rect width="100%" height="100%" fill="#f4f6f8"/>'
            f'<polygon points="{" ".join(top + bottom)}" fill="#3b6ea8"/></svg>')
