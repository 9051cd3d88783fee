"""Bring GPU runs back within the device tool's limits (8 files of at most 16 MiB, 64 MiB in all).

Each run keeps its small files (config, data, env, command, log) and a weights-only checkpoint (encoder and
frontend, :func:`audioemb.train.checkpoint.slim_checkpoint`); kept copies go in float16. Everything is packed
into tar files of at most 15 MiB, the latest kept copies first left out when the whole would not fit.

    python benchmarks/gpu/collect.py /tmp/runs $OUT
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import torch

from audioemb.train.checkpoint import slim_checkpoint

PART, TOTAL, PARTS = 15 * 2**20, 56 * 2**20, 6
SMALL = ("config.json", "data.json", "env.json", "command.json", "log.jsonl", "checkpoint.safetensors.json",
         "train.log")


def main(runs: Path, out: Path) -> None:
    slim_root = runs.parent / (runs.name + "-slim")
    files: list[tuple[Path, str, bool]] = []  # (path, name in tar, optional)
    for run in sorted(p for p in runs.iterdir() if p.is_dir()):
        dst = slim_root / run.name
        (dst / "kept").mkdir(parents=True, exist_ok=True)
        for name in SMALL:
            if (run / name).exists():
                files.append((run / name, f"{run.name}/{name}", False))
        if (run / "checkpoint.safetensors").exists():
            slim_checkpoint(run / "checkpoint.safetensors", dst / "checkpoint.safetensors")
            files.append((dst / "checkpoint.safetensors", f"{run.name}/checkpoint.safetensors", False))
        for kept in sorted((run / "kept").glob("*.safetensors")):
            slim_checkpoint(kept, dst / "kept" / kept.name, dtype=torch.float16)
            files.append((dst / "kept" / kept.name, f"{run.name}/kept/{kept.name}", True))
    need = [f for f in files if not f[2]]
    optional = [f for f in files if f[2]]
    while optional and sum(p.stat().st_size for p, _, _ in need + optional) > TOTAL:
        dropped = optional.pop(len(optional) // 2)  # thin the curve evenly rather than cut its end
        print(f"left out {dropped[1]} (size)")
    parts: list[list[tuple[Path, str, bool]]] = [[]]
    for f in sorted(need + optional, key=lambda f: -f[0].stat().st_size):
        sizes = [sum(p.stat().st_size for p, _, _ in part) for part in parts]
        fits = [i for i, s in enumerate(sizes) if s + f[0].stat().st_size <= PART]
        if fits:
            parts[fits[0]].append(f)
        elif len(parts) < PARTS:
            parts.append([f])
        else:
            print(f"left out {f[1]} (parts full)")
    for i, part in enumerate(parts):
        with tarfile.open(out / f"runs-{i}.tar", "w") as tar:
            for path, name, _ in part:
                tar.add(path, arcname=name)
        print(f"runs-{i}.tar: {len(part)} files, {(out / f'runs-{i}.tar').stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
