"""Held-out figures along a run: score the weights the trainer kept every ``keep_every`` steps.

A long run keeps ``RUN/kept/checkpoint-<step>.safetensors`` (weights only). :func:`score_kept` embeds the
held-out task clips with each of them, scores them (linear probe, kNN p@10, few-shot) and appends one line
per step to ``RUN/heldout.jsonl``, so a re-run scores only new steps. ``audioemb export`` copies the curve into
the model's config and card; the run can be stopped once the curve stops rising.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from ..audio import load as load_audio
from ..eval.data import LabelledSet
from ..eval.run import corpus_tasks, score
from ..fsio import atomic_write
from ..nn.model import AudioEmbedder
from .checkpoint import load_kept
from .package import load_run

CURVE_FILE = "heldout.jsonl"
DOMAINS = ("speech", "music", "sound")
METRICS = ("probe_acc", "knn_p10", "fewshot_acc")


def kept_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every kept copy of the weights in ``run_dir/kept``, by step."""
    out = []
    for p in sorted((Path(run_dir) / "kept").glob("checkpoint-*.safetensors")):
        with safe_open(str(p), "pt") as f:
            out.append((int(f.metadata()["step"]), p))
    return sorted(out)


def read_curve(run_dir: Path) -> list[dict]:
    """The held-out curve scored so far (one dict per step), by step."""
    p = Path(run_dir) / CURVE_FILE
    if not p.is_file():
        return []
    rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["step"])


def domain_means(results: dict[str, dict]) -> dict[str, float]:
    """``{"<domain>/<metric>": mean over the domain's tasks}`` (tasks are named ``<domain>-<what>``)."""
    out = {}
    for d in DOMAINS:
        for m in METRICS:
            v = [r[m] for t, r in results.items() if t.split("-")[0] == d]
            if v:
                out[f"{d}/{m}"] = round(float(np.mean(v)), 4)
    return out


@torch.inference_mode()
def embed_clips(model: AudioEmbedder, paths: list[Path], waves: dict[Path, np.ndarray] | None = None,
                batch: int = 64) -> np.ndarray:
    """Clip embeddings of ``paths`` with a torch model (clips shorter than the model's shortest input are
    zero-padded, as the ONNX runtime does). Clips of equal length run as one batch, so no clip is padded to
    another's length; ``waves`` keeps the decoded clips for the next checkpoint."""
    model.eval()
    waves = {} if waves is None else waves
    for p in paths:
        if p not in waves:
            w = load_audio(p, model.sample_rate)
            waves[p] = np.pad(w, (0, max(0, model.min_samples - len(w)))).astype(np.float32)
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(paths):
        by_len.setdefault(len(waves[p]), []).append(i)
    out: list[np.ndarray | None] = [None] * len(paths)
    for idx in by_len.values():
        for s in range(0, len(idx), batch):
            part = idx[s:s + batch]
            emb, _, _ = model(torch.from_numpy(np.stack([waves[paths[i]] for i in part])))
            for i, e in zip(part, emb.float().numpy()):
                out[i] = e
    return np.stack(out)


def score_weights(model: AudioEmbedder, tasks: list[LabelledSet],
                  waves: dict[Path, np.ndarray] | None = None) -> dict[str, dict]:
    """Scores of ``model`` on each task."""
    return {ds.name: score(embed_clips(model, ds.paths, waves), ds) for ds in tasks}


def score_kept(run_dir: Path, corpus: Path, task_names: list[str] | None = None,
               log: Callable[[str], None] = print) -> list[dict]:
    """Score every kept checkpoint of ``run_dir`` not yet in ``heldout.jsonl`` on ``corpus``'s held-out tasks
    (or the ``task_names`` among them); returns the whole curve."""
    run_dir = Path(run_dir)
    _, obj, _ = load_run(run_dir)
    model = AudioEmbedder(obj.frontend, obj.encoder)
    tasks = [t for t in corpus_tasks(Path(corpus)) if task_names is None or t.name in task_names]
    names = sorted(t.name for t in tasks)
    curve = {r["step"]: r for r in read_curve(run_dir)}
    waves: dict[Path, np.ndarray] = {}  # decoded once for every checkpoint
    for step, path in kept_checkpoints(run_dir):
        if step in curve and sorted(curve[step]["results"]) == names:
            continue
        load_kept(path, obj)
        results = score_weights(model, tasks, waves)
        curve[step] = {"step": step, "means": domain_means(results), "results": results}
        atomic_write(run_dir / CURVE_FILE, "".join(json.dumps(curve[s]) + "\n" for s in sorted(curve)))
        log(f"step {step}: " + "  ".join(f"{k} {v:.3f}" for k, v in curve[step]["means"].items()))
    return [curve[s] for s in sorted(curve)]
