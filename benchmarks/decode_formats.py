"""What decoding costs per format: libsndfile's (WAV, FLAC, MP3, Ogg Vorbis) against PyAV's (the ``[av]`` extra:
AAC in MP4, AAC in ADTS, Opus in WebM), through the one path every command takes.

    python benchmarks/decode_formats.py [--seconds 60] [--repeat 7]

Encodes one minute of a real recording (the example clips, looped and stereo, at 48 kHz) into each format in a
temporary folder, then times ``audioemb.audio.load`` (decode, mix-down, resample to 16 kHz) ``--repeat`` times per
file, interleaved; the median counts. The figure is milliseconds per minute of audio on one core, and the ratio is
against FLAC, measured in the same run. Needs PyAV (``pip install 'audioemb[av]'``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from common import machine, table, work_folder

CLIPS = Path(__file__).resolve().parents[1] / "examples" / "clips"
SR = 48000
SNDFILE = [("WAV PCM_16", "wav", {"format": "WAV", "subtype": "PCM_16"}),
           ("FLAC", "flac", {"format": "FLAC", "subtype": "PCM_16"}),
           ("MP3", "mp3", {"format": "MP3", "subtype": "MPEG_LAYER_III"}),
           ("Ogg Vorbis", "ogg", {"format": "OGG", "subtype": "VORBIS"})]
PYAV = [("AAC in MP4 (.m4a)", "m4a", "ipod", "aac"), ("AAC in ADTS (.aac)", "aac", "adts", "aac"),
        ("Opus in WebM (.webm)", "webm", "webm", "libopus")]


def _signal(seconds: float) -> np.ndarray:
    """The example clips at 48 kHz, looped to ``seconds``, as stereo (the second channel delayed)."""
    from audioemb.audio import load

    x = np.concatenate([load(p, SR) for p in sorted(CLIPS.iterdir()) if p.suffix != ".md"])
    x = np.tile(x, int(np.ceil(seconds * SR / len(x))))[: int(seconds * SR)]
    return np.stack([x, np.roll(x, 480)], axis=1).astype(np.float32) * 0.8


def _av_write(path: Path, x: np.ndarray, fmt: str, codec: str) -> None:
    import av

    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=SR)
        s.layout = "stereo"
        for a in range(0, len(x), 48000):  # one second per frame handed to the encoder
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[a:a + 48000].T), format="fltp", layout="stereo")
            frame.sample_rate = SR
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)


def main(argv: list[str] | None = None) -> str:
    from audioemb import audio

    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    x = _signal(args.seconds)
    with work_folder(None, "decode-formats-") as tmp:
        files = {}
        for name, ext, kw in SNDFILE:
            files[name] = tmp / f"x.{ext}"
            with sf.SoundFile(files[name], "w", SR, 2, **kw) as f:  # in blocks: one large Vorbis write crashes
                for a in range(0, len(x), SR):                       # libsndfile 1.2.2 (a segfault)
                    f.write(x[a:a + SR])
        for name, ext, fmt, codec in PYAV:
            files[name] = tmp / f"x.{ext}"
            _av_write(files[name], x, fmt, codec)
        times: dict[str, list[float]] = {n: [] for n in files}
        for _ in range(args.repeat):
            for name, p in files.items():
                t0 = time.perf_counter()
                y = audio.load(p, 16000)
                times[name].append(time.perf_counter() - t0)
                assert abs(len(y) / 16000 - args.seconds) < 0.5, (name, len(y))
        per_min = {n: statistics.median(t) * 60 / args.seconds * 1000 for n, t in times.items()}
        rows = [[n, "libsndfile" if i < len(SNDFILE) else "PyAV (FFmpeg)", f"{files[n].stat().st_size / 1e6:.2f}",
                 f"{per_min[n]:.1f}", f"{per_min[n] / per_min['FLAC']:.2f}x"] for i, n in enumerate(files)]
    out = table(["file (48 kHz stereo)", "decoder", "size (MB)", "decode + 16 kHz mono (ms/min)", "vs FLAC"], rows)
    print(machine())
    print(out)
    return out


if __name__ == "__main__":
    main()
