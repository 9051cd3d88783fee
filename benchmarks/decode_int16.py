"""Decoding 16-bit WAV as int16 (scaled in numpy) against libsndfile's own float conversion.

    python benchmarks/decode_int16.py [--seconds 30] [--repeat 9]

Writes one noise file per (format, channels, rate) into a temporary folder, then times ``audioemb.audio.load``
(decode, mix-down, resample to 16 kHz) with the int16 path on and off, interleaved, ``--repeat`` times each;
the median counts. The figure is milliseconds per minute of audio on one core. The other files are not read as
int16 (16-bit FLAC and 8-bit WAV gained nothing when they were) and are listed as controls: their two columns
differ only by noise.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import soundfile as sf
from common import machine, table, work_folder

CASES = [("WAV", "PCM_16", "wav"), ("FLAC", "PCM_16", "flac"), ("WAV", "PCM_U8", "wav"),
         ("WAV", "FLOAT", "wav"), ("FLAC", "PCM_24", "flac")]


def main(argv: list[str] | None = None) -> str:
    from audioemb import audio

    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args(argv)
    fast = audio.INT16_SUBTYPES
    rng = np.random.default_rng(0)
    rows = []
    with work_folder(None, "decode-int16-") as tmp:
        for fmt, subtype, ext in CASES:
            for channels in (1, 2):
                for sr in (16000, 44100):
                    x = np.clip(rng.standard_normal((int(sr * args.seconds), channels)) * 0.3, -1, 1)
                    p = tmp / f"{subtype}-{channels}-{sr}.{ext}"
                    sf.write(p, x, sr, subtype=subtype, format=fmt)
                    times: dict[str, list[float]] = {"float": [], "int16": []}
                    for _ in range(args.repeat):
                        for mode in times:
                            audio.INT16_SUBTYPES = fast if mode == "int16" else frozenset()
                            t0 = time.perf_counter()
                            audio.load(p, 16000)
                            times[mode].append(time.perf_counter() - t0)
                    audio.INT16_SUBTYPES = fast
                    per_min = {m: statistics.median(t) * 60 / args.seconds * 1000 for m, t in times.items()}
                    rows.append([f"{fmt} {subtype}", channels, sr, f"{per_min['float']:.1f}",
                                 f"{per_min['int16']:.1f}", f"{per_min['float'] / per_min['int16']:.2f}x",
                                 "yes" if audio.reads_as_int16(audio.info(p)) else "no (control)"])
    out = table(["file", "channels", "rate (Hz)", "libsndfile float (ms/min)", "this code (ms/min)", "speed-up",
                 "read as int16"], rows)
    print(machine())
    print(out)
    return out


if __name__ == "__main__":
    main()
