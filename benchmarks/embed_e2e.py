"""End-to-end ``audioemb embed`` on a folder of about 1,000 mixed-format files, and where the time goes.

    python benchmarks/embed_e2e.py [--files 1000] [--model byol-s.debian2] [--repeat 2]

The folder is generated from the repository's example clips: each file is a clip (or a concatenation of
clips) re-encoded as wav/flac/ogg/mp3 at 8-48 kHz, mono or stereo. Reports files per second, hours of
audio per minute, the share of time in decoding, resampling and the model (each measured alone), and the
overhead of the whole job over the model alone (target: at most 25 %), all measured in one run.

The model alone runs on pre-decoded arrays with onnxruntime on every core, and as one one-thread session per
core at once (lanes; the faster of the two on a small model). The job is run as a lane per core (the
default: each decoder process runs the model too, on one thread; ``--lanes 1,2`` adds fewer lanes) and
without lanes three ways: decoding in the main process between batches (``workers=0``, onnxruntime on every
core); one decoder process beside onnxruntime on every core; and one decoder process with onnxruntime on the
other cores. On more than 5 cores, two more: the ``--no-lanes`` default of :func:`audioemb.embed.balanced`
(a fifth of the cores decoding, one for the main thread, onnxruntime on the others), and the same decoders
beside onnxruntime on every core. Each measurement runs ``--repeat`` times, interleaved, and the best time
counts.

``--layouts 3x13,8x8`` adds jobs of W decoder processes beside onnxruntime on T threads, with the model alone
timed on each such T as well (so the table separates fewer threads from decoding); ``--no-spin`` adds the
default layout with onnxruntime's spin-waiting off (``session.intra_op.allow_spinning = 0``); ``--serial-model``
adds the default layout with the model run in the main thread between batches (as before 2026-11-26's
model thread, ``stream.MODEL_AHEAD = 0``).
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
    from audioemb import stream
    from audioemb.embed import balanced, embed_folder
    from audioemb.runtime import load

    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--model", default=None)
    ap.add_argument("--repeat", type=int, default=2, help="Runs of each measurement, interleaved; the best counts.")
    ap.add_argument("--layouts", default="", help="More jobs, as WxT: W decoder processes, T onnxruntime threads.")
    ap.add_argument("--no-spin", action="store_true", help="Also the default layout without spin-waiting.")
    ap.add_argument("--serial-model", action="store_true", help="Also the default layout, model in the main thread.")
    ap.add_argument("--lanes", default="", help="Jobs of N lanes (decoder processes that run the model on one "
                    "thread each), e.g. 2,3; the model alone is timed as N one-thread sessions at once too.")
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    tmp = Path(tempfile.mkdtemp(prefix="audioemb-bench-"))
    try:
        folder = tmp / "files"
        folder.mkdir()
        seconds = make_folder(folder, args.files)
        model = load(args.model, threads=cores)
        split = load(args.model, threads=max(1, cores - 1))
        paths = audio_io.find_audio(folder)
        default = balanced(None)
        ahead = stream.MODEL_AHEAD
        # (decoder processes, onnxruntime threads, model, what else differs)
        jobs = [(0, cores, model, ""), (1, cores, model, ""), (1, max(1, cores - 1), split, "")]
        if default[0] > 1:  # the default, and the same decoders beside onnxruntime on every core (before 2026-11-26)
            jobs += [(default[0], default[1], load(args.model, threads=default[1]), ""), (default[0], cores, model, "")]
        for spec in filter(None, args.layouts.split(",")):
            w, t = (int(v) for v in spec.split("x"))
            jobs.append((w, t, load(args.model, threads=t), ""))
        if args.no_spin:
            jobs.append((*default, _no_spin(load(args.model, threads=default[1]), default[1]), "no spin-waiting"))
        if args.serial_model:
            jobs.append((*default, load(args.model, threads=default[1]), "model in the main thread"))
        alone = {t: m for _w, t, m, how in jobs if t != cores and not how}  # the model alone on fewer threads, too
        n_lanes = sorted({cores, *(int(v) for v in filter(None, args.lanes.split(",")))})  # a lane per core: default
        jobs += [(n, 1, model, "lanes") for n in n_lanes]
        one = [load(args.model, threads=1) for _ in range(max(n_lanes, default=0))]
        best: dict[str, float] = {}

        def note(key: str, t0: float) -> None:
            best[key] = min(best.get(key, float("inf")), time.perf_counter() - t0)

        for rep in range(args.repeat):
            t = time.perf_counter()
            raw = []
            for p in paths:  # decoded and mixed to mono as the job does, at the file's own rate
                meta, blocks = audio_io.open_stream(p)
                raw.append((np.concatenate(list(blocks)), meta.sample_rate))
            note("decode", t)
            t = time.perf_counter()
            at_rate = [soxr.resample(x, sr, model.sample_rate, quality="HQ") if sr != model.sample_rate else x
                       for x, sr in raw]
            note("resample", t)
            t = time.perf_counter()
            model.encode(at_rate, batch_size=32)
            note("model", t)
            for threads, m in alone.items():
                t = time.perf_counter()
                m.encode(at_rate, batch_size=32)
                note(f"model{threads}", t)
            for n in n_lanes:
                t = time.perf_counter()
                _sessions_at_once(one[:n], at_rate)
                note(f"lanes{n}", t)
            for i, (workers, _threads, m, how) in enumerate(jobs):
                stream.MODEL_AHEAD = 0 if how == "model in the main thread" else ahead
                t = time.perf_counter()
                embed_folder(folder, tmp / f"out{rep}-{i}", m, workers=workers, progress=False, lanes=how == "lanes")
                note(f"job{i}", t)
            stream.MODEL_AHEAD = ahead
            del raw, at_rate
        t_model = best["model"]
        rows = [[len(paths), f"{seconds / 3600:.2f}", f"{best['decode']:.1f}", f"{best['resample']:.1f}",
                 f"{t_model:.1f}"]]
        text = table(["files", "audio (h)", "decode alone (s)", "resample alone (s)", "model alone (s)"], rows)
        if alone or n_lanes:
            fewer = [[f"{t} thread(s)", f"{best[f'model{t}']:.1f}", f"{best[f'model{t}'] / t_model - 1:+.0%}"]
                     for t in sorted(alone)]
            fewer += [[f"{n} one-thread sessions at once", f"{best[f'lanes{n}']:.1f}",
                       f"{best[f'lanes{n}'] / t_model - 1:+.0%}"] for n in n_lanes]
            text += "\n\n" + table(["model alone on", "time (s)", "vs every core"], fewer)
        rows = []
        for i, (workers, threads, _m, how) in enumerate(jobs):
            t_job = best[f"job{i}"]
            dec = "decode inline" if workers == 0 else f"{workers} decoder process(es)"
            label = f"{dec} + onnxruntime {threads} thread(s)" + (f", {how}" if how else " (--no-lanes default)"
                                                                   if (workers, threads) == default else "")
            if how == "lanes":
                alone_n = best[f"lanes{workers}"]
                label = f"{workers} lanes (decode + model on one thread each; vs {workers} sessions alone: "\
                        f"{t_job / alone_n - 1:+.0%})" + (" (default)" if workers == cores else "")
            rows.append([label, f"{t_job:.1f}", f"{len(paths) / t_job:.1f}", f"{seconds / 3600 / (t_job / 60):.2f}",
                         f"{t_job / t_model - 1:+.0%}"])
        text += "\n\n" + table(["embed job", "time (s)", "files/s", "audio h per min", "overhead over model alone"],
                                rows)
        text += f"\n\nbest of {args.repeat} interleaved runs of each measurement, on {cores} cores"
        print(text)
        return text
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sessions_at_once(models: list, clips: list) -> None:
    """The model alone as lanes: ``clips`` dealt round-robin to one-thread sessions run in parallel threads.

    A session that fails raises here (``result()``), so a broken lane cannot pass for a fast one."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(models)) as pool:
        futures = [pool.submit(m.encode, clips[i::len(models)], batch_size=32) for i, m in enumerate(models)]
        for f in futures:
            f.result()


def _no_spin(m, threads: int):
    """``m`` with its onnxruntime session rebuilt without spin-waiting threads."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    m.backend.session = ort.InferenceSession(str(m.folder.file("model.onnx")), so, providers=["CPUExecutionProvider"])
    return m


if __name__ == "__main__":
    main()
