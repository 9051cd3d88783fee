"""Peak memory (RSS) of ``audioemb embed`` on one 60-minute file and on folders of up to 100,000 tiny files.

    python benchmarks/memory.py [--minutes 60] [--files 10000] [--many 100000]

(``--minutes 0``, ``--files 0`` or ``--many 0`` leaves those cases out.)

Each case runs in a fresh process and reads its own VmHWM (peak RSS) from /proc, and the largest peak of
its decoder processes (RUSAGE_CHILDREN); a baseline process that only loads the model gives the fixed
cost. Every case should stay flat, not grow with the input: a long file is read in blocks and at most
``4 x batch_size`` windows wait for the model; the file list, the plan and the merge are streamed through
temporary files and sorted manifests, so no per-file record stays in memory. The tiny files are one
real 16-bit wav encoded once and written as bytes under 100,000 names (``sf.write`` per file took 6 ms
each on the loaded machine); the largest case adds files to the folder of the case before it. Each step's
wall time goes to stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from common import table

CHILD = """
import json, re, resource, sys
import audioemb
from audioemb.embed import embed_folder
m = audioemb.load(None, threads=2)
if sys.argv[1] != "-":
    embed_folder(sys.argv[1], sys.argv[2], m, progress=False)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec, so it would report the parent's peak
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"peak_mb": int(hwm.group(1)) / 1024, "decoder_mb": kids}))
"""


def peak(folder: str, out: str) -> tuple[float, float]:
    """(peak RSS of the embedding process, largest peak RSS of its decoder processes), MB."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CHILD, folder, out], capture_output=True, text=True, check=True)
    d = json.loads(r.stdout.strip().splitlines()[-1])
    step(f"embedded {folder}", t)
    return d["peak_mb"], d["decoder_mb"]


def step(what: str, since: float) -> None:
    print(f"[memory.py] {what}: {time.perf_counter() - since:.1f} s", file=sys.stderr, flush=True)


def tiny_files(d: Path, start: int, stop: int, wav: bytes) -> None:
    """Files ``start..stop-1`` of a folder of copies of ``wav``, 1,000 per sub-folder."""
    t = time.perf_counter()
    for i in range(start, stop):
        sub = d / f"{i // 1000:03d}"
        if i % 1000 == 0 or i == start:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"t{i:06d}.wav").write_bytes(wav)
    step(f"wrote {stop - start} tiny files", t)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--many", type=int, default=100000, help="tiny files (0.25 s) in the largest case; 0: none")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="audioemb-mem-"))
    rng = np.random.default_rng(0)
    try:
        rows = [["model loaded, nothing embedded", "-", f"{peak('-', '-')[0]:.0f}", "-"]]
        for minutes in (args.minutes / 6, args.minutes / 2, args.minutes) if args.minutes else ():
            d = tmp / f"long{minutes:g}"
            d.mkdir()
            n = int(minutes * 60 * 44100)
            with sf.SoundFile(d / "long.flac", "w", 44100, 2, subtype="PCM_16") as f:
                for s in range(0, n, 44100 * 60):
                    f.write((rng.standard_normal((min(44100 * 60, n - s), 2)) * 0.05).astype(np.float32))
            mb, dec = peak(str(d), str(tmp / "o" / d.name))
            rows.append([f"one {minutes:g}-minute file (44.1 kHz stereo FLAC)", "1", f"{mb:.0f}", f"{dec:.0f}"])
        for count in (args.files // 10, args.files) if args.files else ():
            d = tmp / f"short{count}"
            d.mkdir()
            clip = (rng.standard_normal(16000) * 0.05).astype(np.float32)
            for i in range(count):
                sf.write(d / f"c{i:05d}.wav", clip[: 8000 + (i % 8000)], 16000, subtype="PCM_16")
            mb, dec = peak(str(d), str(tmp / "o" / d.name))
            rows.append([f"{count} short files (0.5-1 s wav)", str(count), f"{mb:.0f}", f"{dec:.0f}"])
        buf = io.BytesIO()
        sf.write(buf, (rng.standard_normal(4000) * 0.05).astype(np.float32), 16000, format="WAV", subtype="PCM_16")
        d, have = tmp / "tiny", 0
        for count in (args.many // 10, args.many) if args.many else ():
            tiny_files(d, have, count, buf.getvalue())
            have = count
            mb, dec = peak(str(d), str(tmp / "o" / f"tiny{count}"))
            rows.append([f"{count} tiny files (0.25 s wav, 1,000 per folder)", str(count), f"{mb:.0f}", f"{dec:.0f}"])
        text = table(["case", "files", "peak RSS (MB)", "decoder peak RSS (MB)"], rows)
        print(text)
        return text
    finally:
        t = time.perf_counter()
        shutil.rmtree(tmp, ignore_errors=True)
        step("deleted the work folder", t)


if __name__ == "__main__":
    main()
