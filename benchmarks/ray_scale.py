"""``embed --ray`` with 1 and 2 Ray workers on this machine, beside the local job, on the mixed-format folder.

    python benchmarks/ray_scale.py [--files 300] [--model NAME]

Starts a local Ray head with as many CPUs as the machine has (``ray start --head --block``, stopped at the
end), embeds the same generated folder (see ``embed_e2e.make_folder``) into a fresh OUT with ``workers``
tasks at once, and prints files/s, the speed-up over one worker and the per-worker throughput that
docs/scale.md extrapolates from. Each run includes Ray's scheduling and the workers' model loads.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import table
from embed_e2e import make_folder


def main(argv: list[str] | None = None) -> str:
    import ray

    from audioemb.embed import embed_folder
    from audioemb.ray_embed import embed_folder_ray

    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    tmp = Path(tempfile.mkdtemp(prefix="audioemb-ray-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--num-cpus", str(cores),
                             "--port", str(port), "--include-dashboard", "false", "--temp-dir", str(tmp / "ray"),
                             "--block"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    try:
        folder = tmp / "files"
        folder.mkdir()
        seconds = make_folder(folder, args.files)
        for _ in range(60):
            try:
                ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
                break
            except Exception:
                time.sleep(2)
        rows, base = [], None
        t = time.perf_counter()
        embed_folder(folder, tmp / "local", args.model, progress=False)
        t_local = time.perf_counter() - t
        for workers in (1, 2):
            t = time.perf_counter()
            s = embed_folder_ray(folder, tmp / f"ray{workers}", args.model, workers=workers, files_per_task=25)
            dt = time.perf_counter() - t
            assert s.embedded == args.files, s
            base = base or dt
            rows.append([f"Ray, {workers} worker{'s' if workers > 1 else ''}", f"{dt:.1f}", f"{args.files / dt:.1f}",
                         f"{base / dt:.2f}x", f"{args.files / dt / workers:.1f}", f"{seconds / 3600 / (dt / 60):.2f}"])
        rows.append([f"local job (decoder processes + onnxruntime, {cores} cores)", f"{t_local:.1f}",
                     f"{args.files / t_local:.1f}", "-", f"{args.files / t_local / cores:.1f}",
                     f"{seconds / 3600 / (t_local / 60):.2f}"])
        text = f"{args.files} files, {seconds / 3600:.2f} h of audio, {cores} cores\n\n" + table(
            ["job", "time (s)", "files/s", "speed-up", "files/s per worker (core)", "audio h per min"], rows)
        print(text)
        return text
    finally:
        ray.shutdown()
        head.terminate()
        head.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
