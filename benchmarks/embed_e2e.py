"""End-to-end ``audioemb embed`` on a folder of about 1,000 mixed-format files, and where the time goes.

    python benchmarks/embed_e2e.py [--files 1000] [--model byol-s.debian]

The folder is generated from the repository's example clips: each file is a clip (or a concatenation of
clips) re-encoded as wav/flac/ogg/mp3 at 8-48 kHz, mono or stereo. Reports files per second, hours of
audio per minute, the share of time in decoding, resampling and the model (each measured alone), and the
overhead of the whole job over the model alone (target: at most 25 %), all measured in one run.

The model alone runs on pre-decoded arrays with onnxruntime on every core (its fastest setting). The job is
run three ways: decoding in the main process before each batch (``workers=0``, onnxruntime on every core);
decoder processes beside onnxruntime on every core (the default: ``embed_folder`` with a model name,
see :func:`audioemb.embed.balanced`); and decoder processes with the cores split between them and onnxruntime.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from common import table

ROOT = Path(__file__).resolve().parents[1]
FORMATS = [("wav", "PCM_16"), ("flac", "PCM_24"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III"), ("wav", "FLOAT")]
RATES = [8000, 16000, 22050, 44100, 48000]


def make_folder(dest: Path, n: int, seed: int = 0) -> float:
    """Write ``n`` files into ``dest``; return their total duration in seconds."""
    from audioemb.audio import load

    clips = [load(p, 48000) for p in sorted((ROOT / "examples" / "clips").iterdir()) if p.suffix != ".md"]
    rng = np.random.default_rng(seed)
    total = 0.0
    for i in range(n):
        parts = [clips[j] for j in rng.integers(0, len(clips), int(rng.integers(1, 6)))]
        x = np.concatenate(parts)
        ext, sub = FORMATS[i % len(FORMATS)]
        sr = RATES[int(rng.integers(len(RATES)))]
        y = soxr.resample(x, 48000, sr).astype(np.float32)
        if i % 3 == 0:
            y = np.stack([y, y * 0.5], axis=1)
        if ext == "mp3" and sr not in (8000, 16000, 22050, 44100, 48000):
            sr = 44100
        sf.write(dest / f"f{i:05d}.{ext}", y, sr, subtype=sub)
        total += len(y) / sr
    return total


def main(argv: list[str] | None = None) -> str:
    import os

    from audioemb import audio as audio_io
    from audioemb.embed import balanced, embed_folder
    from audioemb.runtime import load

    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    tmp = Path(tempfile.mkdtemp(prefix="audioemb-bench-"))
    try:
        folder = tmp / "files"
        folder.mkdir()
        seconds = make_folder(folder, args.files)
        model = load(args.model, threads=cores)
        paths = audio_io.find_audio(folder)
        t = time.perf_counter()
        raw = []
        for p in paths:
            x, sr = sf.read(str(p), dtype="float32", always_2d=True)
            raw.append((x.mean(axis=1), sr))
        t_decode = time.perf_counter() - t
        t = time.perf_counter()
        at_rate = [soxr.resample(x, sr, model.sample_rate, quality="HQ") if sr != model.sample_rate else x
                   for x, sr in raw]
        t_resample = time.perf_counter() - t
        t = time.perf_counter()
        model.encode([a.astype(np.float32) for a in at_rate], batch_size=32)
        t_model = time.perf_counter() - t
        runs = []
        w, th = balanced(None)
        split = load(args.model, threads=max(1, cores - w))
        for label, m, workers in [(f"decode inline, onnxruntime {cores} threads", model, 0),
                                  (f"{w} decoder process(es) + onnxruntime {th} thread(s) (default)", args.model, None),
                                  (f"{w} decoder process(es) + onnxruntime {max(1, cores - w)} thread(s) (cores split)",
                                   split, w)]:
            out = tmp / f"out{len(runs)}"
            t = time.perf_counter()
            s = embed_folder(folder, out, m, workers=workers, progress=False)
            runs.append((label, time.perf_counter() - t))
            assert s.embedded == len(paths), s
        rows = [[len(paths), f"{seconds / 3600:.2f}", f"{t_decode:.1f}", f"{t_resample:.1f}", f"{t_model:.1f}"]]
        text = table(["files", "audio (h)", "decode alone (s)", "resample alone (s)", "model alone (s)"], rows)
        rows = [[label, f"{t_job:.1f}", f"{len(paths) / t_job:.1f}", f"{seconds / 3600 / (t_job / 60):.2f}",
                 f"{t_job / t_model - 1:+.0%}"] for label, t_job in runs]
        text += "\n\n" + table(["embed job", "time (s)", "files/s", "audio h per min", "overhead over model alone"],
                                rows)
        print(text)
        return text
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
