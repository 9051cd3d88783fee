"""Decoding audio files into mono float32 at a chosen sample rate, in bounded memory.

Files are decoded with soundfile (libsndfile: wav, flac, ogg/vorbis, opus, mp3, aiff, ...), mixed down
to mono block by block and resampled with soxr's streaming resampler, so a one-hour file is never held
as float64 or at its original channel count. Every failure is raised as :class:`AudioError`, which names
the file and the reason.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioembError

if TYPE_CHECKING:
    from ._av import AVReader

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd",
     ".caf", ".w64", ".rf64", ".wv"}
)
#: Audio formats libsndfile cannot decode, by extension. Folder scans (embed, index, train --data, search
#: queries) list these files too: PyAV decodes them when the ``[av]`` extra is installed, and otherwise each
#: fails with a way out instead of being passed over in silence. A file whose contents libsndfile reads (a
#: renamed MP3) is decoded by libsndfile.
FFMPEG_ONLY_EXTENSIONS = {
    ".m4a": "AAC or ALAC in MP4", ".m4b": "AAC in MP4 (audiobook)", ".mp4": "MP4", ".aac": "AAC", ".alac": "ALAC",
    ".wma": "Windows Media Audio", ".ape": "Monkey's Audio", ".webm": "WebM", ".mka": "Matroska audio",
    ".amr": "AMR", ".3gp": "3GP", ".ac3": "AC-3", ".dsf": "DSD",
}
BLOCK_FRAMES = 1 << 16  # frames read per block at the file's own rate
# Uncompressed 16-bit files (WAV, AIFF, ...; not FLAC) are read as int16 and scaled here: libsndfile's own
# int-to-float conversion made decoding and resampling them 1.2-2.2x slower (benchmarks/decode_int16.py), and
# x / 32768 is exactly what it returns (tests/test_audio.py). 16-bit FLAC and 8-bit files gained nothing.
INT16_SUBTYPES = frozenset({"PCM_16"})
_INT16_SCALE = np.float32(1.0 / 32768)


class AudioError(AudioembError):
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
    promised_frames: int | None = None  # set when the header promises more than the file holds (-1: unknown)

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header; raise :class:`AudioError` for empty, unreadable or non-audio files."""
    f, meta = _open(path)
    f.close()
    return meta


def _open(path: str | os.PathLike) -> tuple[sf.SoundFile | AVReader, AudioInfo]:
    """The open file and its header, read once; :class:`AudioError` for empty, unreadable or non-audio files."""
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
        f = sf.SoundFile(_sf_path(p))
    except Exception as e:  # libsndfile raises LibsndfileError/RuntimeError with its own message
        kind = FFMPEG_ONLY_EXTENSIONS.get(p.suffix.lower())
        if kind is None:
            raise AudioError(path, f"not a readable audio file ({_sf_reason(e, p)})") from None
        f = _open_av(path, p, kind)
    if f.samplerate <= 0 or f.channels <= 0:
        f.close()
        what = f"sample rate {f.samplerate}" if f.samplerate <= 0 else f"channel count {f.channels}"
        raise AudioError(path, f"invalid {what}")
    return f, AudioInfo(str(p), int(f.samplerate), int(f.channels), int(f.frames), f.format, f.subtype,
                        _promised_frames(f.extra_info, int(f.frames)))


def open_reader(path: str | os.PathLike) -> sf.SoundFile | AVReader:
    """The open file, read like ``soundfile.SoundFile`` (``samplerate``, ``channels``, ``frames``, ``read``,
    ``seek``): libsndfile's, or PyAV's for the formats only FFmpeg decodes; :class:`AudioError` as :func:`info`."""
    return _open(path)[0]


def _open_av(path: str | os.PathLike, p: Path, kind: str) -> AVReader:
    """A format libsndfile cannot decode, through PyAV (the ``[av]`` extra) when it is installed."""
    from . import _av

    if not _av.available():
        raise AudioError(path, f"{kind} ({p.suffix}) is a format libsndfile cannot decode: pip install "
                               f"'audioemb[av]' to decode it with FFmpeg, or convert it to FLAC, WAV, Ogg or MP3 "
                               f"first, e.g. ffmpeg -i '{p.name}' '{p.stem}.flac'")
    try:
        return _av.AVReader(p)
    except Exception as e:  # FFmpeg's errors, a container without audio
        raise AudioError(path, f"not a readable {kind} file (FFmpeg: {e})") from None


def _sf_path(p: str | os.PathLike) -> bytes:
    """The path as bytes, so file names that are not valid UTF-8 open too (soundfile would refuse them)."""
    return os.fsencode(p)


_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)


def _promised_frames(extra: str, frames: int) -> int | None:
    """Frames the header promises when libsndfile found fewer in the file (a truncated file), else None.

    libsndfile shortens a truncated WAV/AIFF to what is there and notes ``data : SIZE (should be N)``;
    an Ogg stream cut short "lacks an end-of-stream bit" (its promised length is unknown: -1).
    """
    m = _DATA_SIZE.search(extra or "")
    if m and int(m[2]) < int(m[1]):
        return int(round(frames * int(m[1]) / max(int(m[2]), 1)))
    if "lacks an end-of-stream bit" in (extra or ""):
        return -1
    return None


def _sf_reason(e: Exception, path: Path | None = None) -> str:
    msg = str(e).strip()
    # libsndfile prefixes messages with "Error opening '<path>': "; the path is already in AudioError
    if msg.startswith("Error opening") and ": " in msg:
        msg = msg.rsplit("': ", 1)[-1].strip()
    if path is not None and (not msg or "does not exist or is not a regular file" in msg
                             or "unknown format" in msg.lower() or "format not recognised" in msg.lower()):
        try:
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError:
            head = b""
        return f"its contents are not in an audio format libsndfile decodes; it starts with {head!r}"
    return msg or type(e).__name__


def _clean(block: np.ndarray) -> tuple[np.ndarray, int]:
    """Mix a (frames, channels) float32 block to mono and zero non-finite samples; return (mono, n_bad).

    The mix is one matrix-vector product with weights 1/channels: each term is scaled before the sum, so huge
    finite samples cannot overflow it (a float64 ``mean(axis=1)`` did the same about 100 times slower)."""
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and Inf are counted and zeroed below
        if block.ndim == 2 and block.shape[1] > 1:
            ch = block.shape[1]
            mono = np.ascontiguousarray(block, dtype=np.float32) @ np.full(ch, 1.0 / ch, np.float32)
        else:
            mono = (block[:, 0] if block.ndim == 2 else block).astype(np.float32, copy=False)
        if np.isfinite(mono.sum()):  # the common case: one pass, no mask (an overflowing sum takes the slow path)
            return mono, 0
    bad = ~np.isfinite(mono)
    n_bad = int(bad.sum())
    if n_bad:
        mono = np.where(bad, np.float32(0.0), mono)
    return mono, n_bad


def _peak(mono: np.ndarray) -> float:
    """max |x| without a temporary array."""
    return max(float(mono.max()), -float(mono.min())) if len(mono) else 0.0


def stream(
    path: str | os.PathLike, sample_rate: int | None = None, block_frames: int = BLOCK_FRAMES,
    report: dict | None = None,
) -> Iterator[np.ndarray]:
    """Yield mono float32 blocks of a file, resampled to ``sample_rate`` (None keeps the file's rate).

    Memory stays bounded by ``block_frames`` whatever the file's length or channel count. Raises
    :class:`AudioError` for files with no frames, files that are entirely NaN/Inf, and decode errors
    (corrupt data, or a FLAC cut short). Sporadic NaN/Inf samples are replaced by zeros. When the
    stream ends, ``report`` (if given) gets ``warnings``: a list of what was wrong but still embedded
    (NaN/Inf samples zeroed, a file shorter than its header promises) and ``peak``, the largest |sample|.
    """
    yield from open_stream(path, sample_rate, block_frames, report)[1]


def open_stream(
    path: str | os.PathLike, sample_rate: int | None = None, block_frames: int = BLOCK_FRAMES,
    report: dict | None = None,
) -> tuple[AudioInfo, Iterator[np.ndarray]]:
    """The file's header and then its blocks as :func:`stream` yields them, opening the file once.

    Header errors are raised here; decoding errors while the blocks are read. The file is closed when the
    blocks are exhausted or the iterator is closed."""
    f, meta = _open(path)
    return meta, _blocks(f, meta, sample_rate, block_frames, report)


def _blocks(f: sf.SoundFile | AVReader, meta: AudioInfo, sample_rate: int | None, block_frames: int,
            report: dict | None) -> Iterator[np.ndarray]:
    path = meta.path
    with f:
        if meta.frames == 0:
            raise AudioError(path, "no audio frames (zero-length audio)")
        target = int(sample_rate or meta.sample_rate)
        resampler = None
        if target != meta.sample_rate:
            resampler = soxr.ResampleStream(meta.sample_rate, target, 1, dtype="float32", quality="HQ")
        n_read = n_bad = 0
        peak = 0.0
        as_int16 = reads_as_int16(meta)
        try:
            while True:
                block = f.read(block_frames, dtype="int16" if as_int16 else "float32", always_2d=True)
                last = len(block) < block_frames
                if as_int16:
                    block = np.multiply(block, _INT16_SCALE, dtype=np.float32)
                mono, bad = _clean(block)
                n_read += len(mono)
                n_bad += bad
                peak = max(peak, _peak(mono))
                if resampler is not None:
                    mono, bad = _clean(resampler.resample_chunk(mono, last=last))  # near float32's max it overflows
                    n_bad += bad
                if len(mono):
                    yield mono
                if last:
                    break
        except AudioError:
            raise
        except Exception as e:
            raise AudioError(path, f"truncated or corrupt: decoding failed at frame {n_read} of the {meta.frames} "
                                   f"the header promises ({_sf_reason(e)})") from None
    if n_read == 0:
        raise AudioError(path, "no audio frames could be decoded (truncated file?)")
    if n_bad >= n_read:
        raise AudioError(path, "every sample is NaN or Inf")
    if report is not None:
        report["warnings"] = _warnings(meta, n_read, n_bad)
        report["peak"] = peak


def reads_as_int16(meta: AudioInfo) -> bool:
    """Whether the file's samples are read as int16 and scaled here (uncompressed 16-bit; see INT16_SUBTYPES)."""
    return meta.subtype in INT16_SUBTYPES and meta.format != "FLAC"


def _warnings(meta: AudioInfo, n_read: int, n_bad: int) -> list[str]:
    """What was wrong with a file that still decoded: zeroed samples, fewer frames than promised."""
    out = []
    if n_bad:
        out.append(f"{n_bad} of {n_read} samples ({100 * n_bad / n_read:.1f} %) were NaN or Inf (or overflowed when "
                   "resampled) and were set to 0")
    sr = meta.sample_rate
    promised = meta.promised_frames if meta.promised_frames is not None else meta.frames
    if promised == -1:
        out.append(f"truncated: the stream ends without its end marker after {n_read / sr:.2f} s")
    elif n_read < promised - (max(2304, promised // 100) if _estimated(meta) else 1):
        out.append(f"truncated: decoded {n_read / sr:.2f} s of the {promised / sr:.2f} s the header promises")
    return out


def _estimated(meta: AudioInfo) -> bool:
    """Whether the promised length is an estimate: MP3's, and a container's duration (PyAV), which counts an
    encoder's priming and padding."""
    return meta.format == "MP3" or meta.format.startswith("AV:")


def load(path: str | os.PathLike, sample_rate: int | None = None) -> np.ndarray:
    """Decode a whole file to a mono float32 array at ``sample_rate`` (None keeps the file's rate)."""
    blocks = list(stream(path, sample_rate))
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]


def read_range(path: str | os.PathLike, start: float, end: float | None, sample_rate: int) -> np.ndarray:
    """Samples [start, end) seconds (``end`` None: to the end) of a file, mono at ``sample_rate``, decoding
    only up to ``end``. A range that is empty or past the end is a ``ValueError`` naming the file."""
    if math.isnan(start) or start < 0 or (end is not None and math.isnan(end)):
        raise ValueError(f"{path}@{start}-{end}: a time range needs numbers of seconds, the start not negative")
    a = start * sample_rate
    a = int(round(a)) if math.isfinite(a) else a  # past any file: reported below
    b = None if end is None or not math.isfinite(end * sample_rate) else int(round(end * sample_rate))
    if b is not None and b <= a:
        raise ValueError(f"{path}@{start}-{end}: the end must come after the start")
    got, at = [], 0
    for block in stream(path, sample_rate):
        lo, hi = max(a - at, 0), len(block) if b is None else min(b - at, len(block))
        if hi > lo:
            got.append(block[lo:hi])
        at += len(block)
        if b is not None and at >= b:
            break
    if not got:
        raise ValueError(f"{path}: start {start} s is past the end of the file ({at / sample_rate:.2f} s)")
    return np.concatenate(got)


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
        mono = _clean(soxr.resample(mono, orig_rate, target_rate, quality="HQ").astype(np.float32, copy=False))[0]
    return mono


def _int_to_float(x: np.ndarray) -> np.ndarray:
    ii = np.iinfo(x.dtype)
    if ii.min == 0:  # unsigned: centre first (8-bit wav convention)
        return ((x.astype(np.float32) - (ii.max + 1) / 2) / ((ii.max + 1) / 2)).astype(np.float32)
    return (x.astype(np.float32) / float(-ii.min)).astype(np.float32)


def is_audio_path(path: str | os.PathLike) -> bool:
    """True for file names with an audio extension this package tries to decode."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def is_listed_audio(path: str | os.PathLike) -> bool:
    """True for the files a scan of a user's folder lists: :func:`is_audio_path`, or an audio format that
    only FFmpeg decodes (:data:`FFMPEG_ONLY_EXTENSIONS`: through PyAV, or failing with the way out). macOS's
    AppleDouble files (``._song.wav``: a copied file's metadata, never audio) are not listed."""
    p = Path(path)
    suffix = p.suffix.lower()
    return (suffix in AUDIO_EXTENSIONS or suffix in FFMPEG_ONLY_EXTENSIONS) and not p.name.startswith("._")


def find_audio(root: str | os.PathLike) -> list[Path]:
    """All files under ``root`` (recursively, following no symlinked folders) with an audio extension.

    Sorted by their path relative to ``root`` so that runs are reproducible. Folders that cannot be
    listed are skipped; :func:`scan_audio` also returns them.
    """
    return scan_audio(root)[0]


def scan_audio(root: str | os.PathLike, undecoded: bool = False) -> tuple[list[Path], list[tuple[str, str]]]:
    """:func:`find_audio`'s files (with ``undecoded``, :func:`is_listed_audio`'s), and (folder relative to
    ``root``, reason) for each folder that could not be listed, so a caller can report them and never treat
    their files as gone."""
    wanted = is_listed_audio if undecoded else is_audio_path
    root = Path(root)
    if root.is_file():
        return [root], []
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or folder")
    out, unreadable = [], []

    def onerror(e: OSError) -> None:
        rel = Path(e.filename).relative_to(root).as_posix() if e.filename else "?"
        unreadable.append((rel, e.strerror or str(e)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        dirnames.sort()
        for fn in filenames:
            if wanted(fn):
                out.append(Path(dirpath) / fn)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix()), sorted(unreadable)


def rel_path(p: Path, root: Path) -> str:
    """``p`` relative to ``root`` with / separators (its name when ``root`` is a file)."""
    return p.relative_to(root).as_posix() if root.is_dir() else p.name


def printable(path: str | os.PathLike) -> str:
    """A path as one printable line: bytes that are not UTF-8 as \\xNN, control characters escaped."""
    s = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in s)


def under(rel: str, folder: str) -> bool:
    """True when the relative path ``rel`` is inside the relative folder ``folder`` ('.' is the root)."""
    return folder in (".", "") or rel == folder or rel.startswith(folder.rstrip("/") + "/")
