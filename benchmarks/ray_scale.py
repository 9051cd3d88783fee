"""``embed --ray`` with 1 and 2 Ray workers on this machine, beside the local job, on the mixed-format folder.

    python benchmarks/ray_scale.py [--files 300] [--model NAME]

Starts a local Ray head with as many CPUs as the machine has (``ray start --head --block``, stopped at the
end), embeds the same generated folder (see ``embed_e2e.make_folder``) into a fresh OUT with ``workers``
tasks at once (1 worker twice: the first job on the cluster starts its worker process, the second finds it
running), and prints files/s, the speed-up over one warm worker and the per-worker throughput that
docs/scale.md extrapolates from. Each run includes Ray's scheduling and the workers' model loads. Ray's
workers run at the benchmark's own priority, as the local job does (``RAY_worker_niceness=0``; by default
Ray starts them 15 nice levels lower, which on a busy machine starves them).

A second table splits each run's time into phases: the cluster's start (``ray start`` until ``ray.init``
connects), the driver's model load and listing, the Ray Data execution (until the first task starts: Ray
Data's start-up, scheduling and the worker processes; the model load in each worker, decoding + embedding
and shard writes, summed over tasks; worker time outside tasks), and the final merge and commit, from the
``timings`` that ``embed_folder_ray`` fills. Ray Data's own ``Dataset.stats()`` of each run goes to stderr.
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

RUNS = [(1, "Ray, 1 worker, first job (cold worker)"), (1, "Ray, 1 worker (warm)"), (2, "Ray, 2 workers")]


def phase_column(tm: dict, workers: int) -> list[str]:
    """One run's phases (see the module docstring) as table cells, from ``embed_folder_ray``'s timings."""
    tasks = tm["tasks"]
    loads = [t["model_s"] for t in tasks if t["model_s"] > 0.05]  # a cached model is a dict look-up
    busy = sum(t["model_s"] + t["embed_s"] + t["write_s"] for t in tasks)
    return [f"{tm['model_s']:.2f}", f"{tm['plan_s']:.2f}", f"{tm['execute_s']:.2f}",
            f"{min(t['start_s'] for t in tasks):.2f}",
            f"{len(loads)} x {sum(loads) / max(1, len(loads)):.2f}", f"{sum(t['embed_s'] for t in tasks):.2f}",
            f"{sum(t['write_s'] for t in tasks):.2f}", f"{workers * tm['execute_s'] - busy:.2f}",
            f"{tm['merge_s']:.2f}", f"{tm['total_s']:.2f}"]


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
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"})
    try:
        folder = tmp / "files"
        folder.mkdir()
        seconds = make_folder(folder, args.files)
        t_cluster = time.perf_counter()
        for _ in range(60):
            try:
                ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
                break
            except Exception:
                time.sleep(2)
        t_cluster = time.perf_counter() - t_cluster
        rows, base, phases = [], None, []
        t = time.perf_counter()
        embed_folder(folder, tmp / "local", args.model, progress=False)
        t_local = time.perf_counter() - t
        # the first job starts a worker process (cold); Ray keeps it for the next jobs of this driver
        for i, (workers, label) in enumerate(RUNS):
            t, tm = time.perf_counter(), {}
            s = embed_folder_ray(folder, tmp / f"ray{i}", args.model, workers=workers, files_per_task=25,
                                 timings=tm)
            dt = time.perf_counter() - t
            phases.append(phase_column(tm, workers))
            print(f"--- Ray Data stats, {label}:\n{tm['ray_data_stats']}", file=sys.stderr)
            assert s.embedded == args.files, s
            base = dt if i == 1 else base
            rows.append([label, f"{dt:.1f}", f"{args.files / dt:.1f}", f"{base / dt:.2f}x" if base else "-",
                         f"{args.files / dt / workers:.1f}", f"{seconds / 3600 / (dt / 60):.2f}"])
        rows.append([f"local job (decoder processes + onnxruntime, {cores} cores)", f"{t_local:.1f}",
                     f"{args.files / t_local:.1f}", "-", f"{args.files / t_local / cores:.1f}",
                     f"{seconds / 3600 / (t_local / 60):.2f}"])
        text = f"{args.files} files, {seconds / 3600:.2f} h of audio, {cores} cores\n\n" + table(
            ["job", "time (s)", "files/s", "speed-up", "files/s per worker (core)", "audio h per min"], rows)
        names = ["driver: load the model", "driver: list the folder, plan", "Ray Data execution",
                 "... until the first task starts", "... model load in each worker process",
                 "... decode + embed (sum over tasks)", "... shard writes (sum over tasks)",
                 "... worker time outside tasks (workers x execution - task time)", "merge + commit shards.json",
                 "total"]
        text += (f"\n\nWhere the time goes (s; the cluster's start, `ray start` until `ray.init` connects: "
                 f"{t_cluster:.1f} s, paid once)\n\n"
                 + table(["phase", *(label for _, label in RUNS)], [[n, *c] for n, *c in zip(names, *phases)]))
        print(text)
        return text
    finally:
        ray.shutdown()
        head.terminate()
        head.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
