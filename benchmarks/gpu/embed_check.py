"""GPU inference on a lent machine: onnxruntime's providers there, the torch backend on CUDA against onnxruntime
on the CPU (parity and clips/s), and the CUDA provider too where onnxruntime-gpu is installed.

    python benchmarks/gpu/embed_check.py pretrained/byol-s.debian2 OUT.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def timed(model, clips: list[np.ndarray]) -> tuple[np.ndarray, float]:
    model.encode(clips[:8], batch_size=64)  # warm-up: sessions, kernels, allocator
    t = time.perf_counter()
    out = model.encode(clips, batch_size=64)
    return out, len(clips) / (time.perf_counter() - t)


def main(folder: str, out_path: str) -> None:
    import onnxruntime as ort
    import torch

    from audioemb import load

    rng = np.random.default_rng(0)
    sr, n = 16000, 256
    t = np.arange(10 * sr) / sr
    clips = [(0.3 * np.sin(2 * np.pi * rng.uniform(80, 2000) * t) + 0.05 * rng.standard_normal(len(t)))
             .astype(np.float32) for _ in range(n)]
    files = sorted(str(p) for p in Path("examples/clips").iterdir() if p.suffix in (".wav", ".flac", ".mp3", ".ogg"))
    rec = {"providers": ort.get_available_providers(), "onnxruntime": ort.__version__, "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "model": Path(folder).name,
           "clips": f"{n} synthetic 10 s clips (tones + noise) and the {len(files)} example files"}
    cpu = load(folder, backend="onnx", device="cpu")
    ref, rec["onnx_cpu_clips_per_s"] = timed(cpu, clips)
    ref_files = cpu.encode(files)
    runs = {"torch_cuda": dict(backend="torch", device="cuda")}
    if "CUDAExecutionProvider" in rec["providers"]:
        runs["onnx_cuda"] = dict(backend="onnx", device="cuda")
    for name, kw in runs.items():
        m = load(folder, **kw)
        got, rec[f"{name}_clips_per_s"] = timed(m, clips)
        rec[f"{name}_max_abs_diff_vs_onnx_cpu"] = float(np.abs(got - ref).max())
        rec[f"{name}_files_max_abs_diff"] = float(np.abs(m.encode(files) - ref_files).max())
    cli = subprocess.run([sys.executable, "-m", "audioemb", "embed", "examples/clips", "-o", "/tmp/embed_cuda",
                          "--model", folder, "--device", "cuda"], capture_output=True, text=True)
    rec["cli_embed_device_cuda"] = {"exit_code": cli.returncode, "stderr_tail": cli.stderr.strip()[-400:]}
    Path(out_path).write_text(json.dumps(rec, indent=1))
    print(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
