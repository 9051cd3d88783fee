"""Embedding speed of shipped models on 2 CPU threads: onnxruntime against torch eager, in one run.

    python benchmarks/speed.py [--models byol-s.debian2 ...] [--threads 2]

Prints clips per second and times real time for 1 s clips (batch 32) and 10 s windows (batch 8).
"""

from __future__ import annotations

import argparse

import numpy as np
from common import best_of, table


def measure(name: str, threads: int) -> list[list]:
    import torch

    from audioemb.runtime import load

    torch.set_num_threads(threads)
    rows = []
    onnx, eager = load(name, threads=threads), load(name, backend="torch", threads=threads)
    rng = np.random.default_rng(0)
    for seconds, batch in ((1.0, 32), (10.0, 8)):
        wav = (rng.standard_normal((batch, int(seconds * onnx.sample_rate))) * 0.1).astype(np.float32)
        t_onnx = best_of(lambda w=wav: onnx.backend.run(w))
        t_torch = best_of(lambda w=wav: eager.backend.run(w))
        rows.append([name, f"{seconds:g} s x {batch}", f"{batch / t_onnx:.1f}", f"{batch / t_torch:.1f}",
                     f"{batch * seconds / t_onnx:.0f}x", f"{batch * seconds / t_torch:.0f}x",
                     f"{t_torch / t_onnx:.2f}"])
    return rows


def main(argv: list[str] | None = None) -> str:
    from audioemb.registry import list_models

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    rows = []
    for name in args.models or list_models():
        rows += measure(name, args.threads)
    text = table(["model", "input", "onnx clips/s", "torch clips/s", "onnx x real time", "torch x real time",
                  "onnx speed-up"], rows)
    print(text)
    return text


if __name__ == "__main__":
    main()
