"""Regenerate the golden outputs of the shipped models: ``python tests/golden/update.py [NAME ...]``.

Each file holds the clip embeddings and the first frames of the example clips, computed with onnxruntime.
Run it only when a model in pretrained/ is added or deliberately replaced.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CLIPS = HERE.parents[1] / "examples" / "clips"


def clips() -> list[Path]:
    return sorted(p for p in CLIPS.iterdir() if p.suffix in {".wav", ".flac", ".ogg", ".mp3"})


def compute(name: str, backend: str = "onnx") -> dict[str, np.ndarray]:
    from audioemb.runtime import load

    m = load(name, backend=backend)
    paths = clips()
    frames = m.encode(paths[:2], output="frames", normalize=False)
    return {"clip": m.encode(paths, normalize=False),
            "frames0": frames[0].embeddings[:8], "frames1": frames[1].embeddings[:8]}


def main(names: list[str]) -> None:
    from audioemb.registry import list_models

    for name in names or list_models():
        np.savez(HERE / f"{name}.npz", **compute(name))
        print("wrote", HERE / f"{name}.npz")


if __name__ == "__main__":
    main(sys.argv[1:])
