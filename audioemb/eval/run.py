"""Score models on labelled sets, beside the log-mel baseline and the same encoders untrained."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .data import LabelledSet, load_labelled
from .metrics import knn_precision, linear_probe, retrieval_map

METRICS = ("probe_acc", "knn_p10", "map")


class LayerView:
    """A model scored on one of its layers (``layer`` index or "mean"), named ``<model>@layer<i>``."""

    def __init__(self, model, layer):
        self.model, self.layer = model, layer
        self.name = f"{model.name}@layer{layer}"
        self.config = model.config

    def encode(self, paths, batch_size: int = 32, **_):
        return self.model.encode(paths, batch_size=batch_size, layer=self.layer)


def score(x: np.ndarray, ds: LabelledSet, standardize: bool = False) -> dict:
    """Probe accuracy (mean and std over folds), kNN precision@10 and mAP of embeddings ``x``."""
    if standardize:
        x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-8)
    acc, std = linear_probe(x, ds.labels, ds.groups)
    return {"probe_acc": round(acc, 4), "probe_std": round(std, 4),
            "knn_p10": round(knn_precision(x, ds.labels, ds.groups), 4),
            "map": round(retrieval_map(x, ds.labels, ds.groups), 4)}


def task_info(ds: LabelledSet) -> dict:
    return {"clips": len(ds), "classes": len(np.unique(ds.labels)),
            "groups": None if ds.groups is None else len(np.unique(ds.groups))}


def corpus_tasks(corpus: Path) -> list[LabelledSet]:
    """The task suite of a corpus built by the recipe (``CORPUS/tasks/*.csv``)."""
    files = sorted((Path(corpus) / "tasks").glob("*.csv"))
    if not files:
        raise ValueError(f"{corpus}: no tasks/*.csv; build it with `audioemb corpus build`")
    return [load_labelled(f) for f in files]


def evaluate(models: list, datasets: list[LabelledSet], batch_size: int = 32, log=print,
             layer=None) -> dict:
    """Score each model (an object with ``name`` and ``encode(paths)``) on each labelled set.

    Returns ``{"tasks": {task: info}, "results": {model: {task: metrics}}, "seconds": ...}``.
    """
    t0 = time.time()
    out: dict = {"tasks": {ds.name: task_info(ds) for ds in datasets}, "results": {}}
    for m in models:
        res = {}
        for ds in datasets:
            kwargs = {"layer": layer} if layer is not None and hasattr(m, "n_layers") else {}
            x = np.asarray(m.encode([str(p) for p in ds.paths], batch_size=batch_size, **kwargs))
            res[ds.name] = score(x, ds, standardize=getattr(m, "standardize", False))
            log(f"  {m.name:32s} {ds.name:18s} probe {res[ds.name]['probe_acc']:.3f}  "
                f"kNN@10 {res[ds.name]['knn_p10']:.3f}  mAP {res[ds.name]['map']:.3f}")
        out["results"][m.name] = res
    out["seconds"] = round(time.time() - t0, 1)
    return out


def format_table(result: dict, metric: str = "probe_acc") -> str:
    """Markdown table: one row per model, one column per task, cells are ``metric``."""
    tasks = list(result["tasks"])
    lines = ["| model | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for name, res in result["results"].items():
        cells = [f"{res[t][metric]:.3f}" if t in res else "" for t in tasks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
