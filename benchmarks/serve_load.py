"""Loopback load test of ``audioemb serve``: N searches from C concurrent clients; p50/p99 latency and errors.

    python benchmarks/serve_load.py --searches 500 --clients 8

Builds an index (default model) of the example clips plus generated clips in a temporary folder, starts
``audioemb serve`` in its own process on a free loopback port and sends a fixed mix of requests: 80 % search
by a collection file, 10 % by a time range of one, 10 % by an uploaded clip (each one embeds its query).
Prints a markdown table (docs/benchmarks.md, "Serving").
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table

ROOT = Path(__file__).resolve().parents[1]


def make_collection(folder: Path, n: int, seed: int = 0) -> list[str]:
    """The example clips and ``n`` generated 1-4 s clips (tones, chirps, noise bursts)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for p in sorted((ROOT / "examples" / "clips").iterdir()):
        if p.suffix in {".wav", ".flac", ".ogg", ".mp3"}:
            shutil.copy(p, folder / p.name)
    sr = 16000
    for i in range(n):
        t = np.arange(int(rng.uniform(1, 4) * sr)) / sr
        kind = i % 3
        if kind == 0:
            x = np.sin(2 * np.pi * rng.uniform(100, 3000) * t)
        elif kind == 1:
            f0, f1 = rng.uniform(100, 4000, 2)
            x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * t[-1]) * t**2))
        else:
            x = rng.standard_normal(len(t)) * (rng.random(len(t) // 800 + 1).repeat(800)[:len(t)] > 0.5)
        sf.write(folder / f"gen_{i:04d}.wav", (0.3 * x / max(np.abs(x).max(), 1e-6)).astype(np.float32), sr)
    return sorted(p.name for p in folder.iterdir())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one(base: str, kind: str, path: str, upload: bytes) -> tuple[float, int]:
    t = time.perf_counter()
    if kind == "upload":
        req = urllib.request.Request(f"{base}/api/search/upload?filename=q.wav&k=10", data=upload, method="POST",
                                     headers={"Content-Type": "audio/wav"})
    else:
        q = {"path": path, "k": 10}
        if kind == "range":
            q.update(start=0.2, end=1.0)
        req = urllib.request.Request(f"{base}/api/search?{urllib.parse.urlencode(q)}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError:
        status = -1
    return time.perf_counter() - t, status


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--searches", type=int, default=500)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--files", type=int, default=300, help="generated clips added to the example clips")
    args = ap.parse_args()
    from audioemb.index import Index

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        names = make_collection(tmp / "sounds", args.files)
        Index.build(tmp / "sounds", tmp / "idx")
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "audioemb", "serve", str(tmp / "idx"), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(f"{base}/api/info", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            rng = np.random.default_rng(1)
            kinds = rng.choice(["file", "range", "upload"], args.searches, p=[0.8, 0.1, 0.1])
            paths = rng.choice(names, args.searches)
            upload = (tmp / "sounds" / "speech_hello_hedgewars.wav").read_bytes()
            one(base, "file", names[0], upload)  # warm-up
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(args.clients) as pool:
                res = list(pool.map(lambda a: one(base, a[0], a[1], upload), zip(kinds, paths)))
            wall = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(10)
    lat = np.array([r[0] for r in res]) * 1000
    errors = sum(1 for r in res if r[1] != 200)
    rows = []
    for kind in ("file", "range", "upload", "all"):
        sel = np.ones(len(res), bool) if kind == "all" else kinds == kind
        if sel.any():
            p50, p99 = np.percentile(lat[sel], [50, 99])
            rows.append([kind, int(sel.sum()), f"{p50:.1f}", f"{p99:.1f}", f"{lat[sel].max():.1f}",
                         sum(1 for r, s in zip(res, sel) if s and r[1] != 200)])
    print(json.dumps(machine(), indent=1))
    print(f"\n{args.searches} searches, {args.clients} concurrent clients, {len(names)} files; "
          f"{args.searches / wall:.1f} searches/s over {wall:.1f} s; {errors} errors\n")
    print(table(["query", "requests", "p50 (ms)", "p99 (ms)", "max (ms)", "errors"], rows))


if __name__ == "__main__":
    main()
