"""Decoding the audio formats libsndfile cannot (AAC and ALAC in MP4, WMA, WebM, Matroska, AC-3, ...) with
PyAV, FFmpeg's Python binding: the optional ``[av]`` extra (``pip install 'audioemb[av]'``).

:class:`AVReader` reads like the parts of ``soundfile.SoundFile`` that :mod:`audioemb.audio` and the serve page
use (``samplerate``, ``channels``, ``frames``, ``read``, ``seek``), so every path that decodes a file (embed,
index, search, train, serve) reads these formats the same way once PyAV is installed.
"""

from __future__ import annotations

import os

import numpy as np


def available() -> bool:
    """Whether PyAV can be imported."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


class AVReader:
    """The first audio stream of a file, decoded in order to float32 (frames, channels) blocks.

    ``frames`` is what the container promises (its duration times the rate; counted by decoding when the
    container gives none), so it can differ from what decodes by an encoder's priming and padding."""

    def __init__(self, path: str | os.PathLike):
        self._file = open(path, "rb")  # a file object: names that are not valid UTF-8 open too
        self._c = None
        try:
            self._start()
            self.samplerate = int(self._s.codec_context.sample_rate or self._s.rate or 0)
            self.channels = int(self._s.codec_context.channels or 0)
            self.format, self.subtype, self.extra_info = f"AV:{self._c.format.name}", self._s.codec_context.name, ""
            self.frames = self._promised()
        except Exception:
            self.close()
            raise

    def _start(self) -> None:
        """(Re)open the container at its start: a rewind decodes exactly as the first pass did, which seeking
        a codec with overlapping frames (AAC, Opus) does not."""
        import av

        if self._c is not None:
            self._c.close()
        self._file.seek(0)
        self._c = av.open(self._file, "r")
        if not self._c.streams.audio:
            raise ValueError("the container holds no audio stream")
        self._s = self._c.streams.audio[0]
        self._resampler = None
        self._packets = None
        self._buf: list[np.ndarray] = []
        self._have = self._pos = 0
        self._done = False

    def _promised(self) -> int:
        s, c = self._s, self._c
        if s.duration and s.time_base:
            return max(int(round(float(s.duration * s.time_base) * self.samplerate)), 0)
        if c.duration:
            return max(int(round(c.duration / 1_000_000 * self.samplerate)), 0)
        n = sum(f.samples for f in c.decode(s))  # no duration recorded: count, then start again
        self._start()
        return n

    def _decode_more(self) -> None:
        if self._packets is None:
            import av

            self._packets = self._c.decode(self._s)
            self._resampler = av.AudioResampler(format="flt", layout=self._s.codec_context.layout,
                                                rate=self.samplerate)
        for frame in self._packets:
            frame.pts = None  # the resampler then ignores gaps and overlaps in the timestamps
            for out in self._resampler.resample(frame):
                self._push(out)
            if self._have:
                return
        for out in self._resampler.resample(None):
            self._push(out)
        self._done = True

    def _push(self, out) -> None:
        block = out.to_ndarray().reshape(-1, self.channels)
        if len(block):
            self._buf.append(block)
            self._have += len(block)

    def read(self, frames: int, dtype: str = "float32", always_2d: bool = True) -> np.ndarray:
        """Up to ``frames`` frames from the current position, (n, channels) float32; fewer at the end."""
        if dtype != "float32":
            raise ValueError("AVReader reads float32 only")
        while self._have < frames and not self._done:
            self._decode_more()
        data = np.concatenate(self._buf) if self._buf else np.zeros((0, self.channels), np.float32)
        out, rest = data[:frames], data[frames:]
        self._buf, self._have = ([rest] if len(rest) else []), len(rest)
        self._pos += len(out)
        return out[:, 0] if not always_2d and self.channels == 1 else out

    def seek(self, frame: int) -> int:
        """Go to ``frame`` by decoding up to it (from the start when going back): exact, where a codec's own
        seeking lands on a packet boundary."""
        if frame < self._pos:
            self._start()
        while self._pos < frame:
            if not len(self.read(min(1 << 16, frame - self._pos))):
                break
        return self._pos

    def close(self) -> None:
        if self._c is not None:
            self._c.close()
        self._file.close()

    def __enter__(self) -> AVReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

