"""Score models on labelled sets, beside the log-mel baseline and the same encoders untrained."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..fsio import atomic_write, save_npy
from .data import LabelledSet, load_labelled
from .metrics import few_shot_probe, knn_precision, linear_probe, retrieval_map

METRICS = ("probe_acc", "knn_p10", "fewshot_acc", "map")
METRIC_TITLES = {"probe_acc": "linear probe accuracy", "knn_p10": "kNN precision@10",
                 "fewshot_acc": "few-shot accuracy (5 per class)", "map": "retrieval mAP"}
SCORE_VERSION = 2  # bump when score() changes, so cached scores are recomputed
FEW_SHOT = {"shots": 5, "draws": 20}
SEED_SEP = "#seed"  # "<model>@random-init#seed1": one seed of a random-init baseline, merged after scoring


class LayerView:
    """A model scored on one of its layers (``layer`` index or "mean"), named ``<model>@layer<i>``."""

    def __init__(self, model, layer):
        self.model, self.layer = model, layer
        base, sep, seed = model.name.partition(SEED_SEP)  # the seed tag stays last, so seeds merge per layer
        self.name = f"{base}@layer{layer}{sep}{seed}"
        self.config = model.config
        key = getattr(model, "cache_key", None)
        self.cache_key = f"{key}@layer{layer}" if key else None

    def encode(self, paths, batch_size: int = 32, **_):
        return self.model.encode(paths, batch_size=batch_size, layer=self.layer)


def distinct_name(name: str, source: str | None, taken: list[str]) -> str:
    """``name``, or ``"<name> (<source>)"`` when an earlier model of the same evaluation is already called
    ``name`` (an export compared with the shipped model it was made from), so that no row overwrites another."""
    if name not in taken:
        return name
    label = f"{name} ({source})"
    k = 2
    while label in taken:
        label, k = f"{name} ({source}, {k})", k + 1
    return label


def layer_views(model) -> list[LayerView]:
    """``model`` read out from each of its layers and from their mean, one :class:`LayerView` each."""
    return [LayerView(model, i) for i in range(model.n_layers)] + [LayerView(model, "mean")]


def score(x: np.ndarray, ds: LabelledSet, standardize: bool = False) -> dict:
    """Probe accuracy (mean and std over folds), few-shot accuracy (mean and std over draws), kNN
    precision@10 and mAP of embeddings ``x``."""
    if standardize:
        x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-8)
    acc, std = linear_probe(x, ds.labels, ds.groups)
    few, few_std = few_shot_probe(x, ds.labels, ds.groups, **FEW_SHOT)
    return {"probe_acc": round(acc, 4), "probe_std": round(std, 4),
            "knn_p10": round(knn_precision(x, ds.labels, ds.groups), 4),
            "fewshot_acc": round(few, 4), "fewshot_std": round(few_std, 4),
            "map": round(retrieval_map(x, ds.labels, ds.groups), 4)}


def task_info(ds: LabelledSet) -> dict:
    return {"clips": len(ds), "classes": len(np.unique(ds.labels)),
            "groups": None if ds.groups is None else len(np.unique(ds.groups)),
            "smallest_class": int(np.unique(ds.labels, return_counts=True)[1].min()) if len(ds) else 0}


def corpus_tasks(corpus: Path) -> list[LabelledSet]:
    """The task suite of a corpus built by the recipe (``CORPUS/tasks/*.csv``)."""
    files = sorted((Path(corpus) / "tasks").glob("*.csv"))
    if not files:
        raise ValueError(f"{corpus}: no tasks/*.csv; build it with `audioemb corpus build`")
    return [load_labelled(f) for f in files]


def dataset_key(ds: LabelledSet, labels: bool = True, relative_to: str | None = None) -> str:
    """sha256 of a labelled set's files (paths and sizes, in order) and, with ``labels``, its labels and groups;
    with ``relative_to``, paths relative to that folder (the same set copied elsewhere hashes the same).

    Embeddings depend only on the files, so two tasks over the same clips (music family and pitch) share them.
    """
    h = hashlib.sha256()
    groups = ds.groups if ds.groups is not None else [None] * len(ds)
    for p, y, g in zip(ds.paths, ds.labels, groups):
        size = os.stat(p).st_size if os.path.exists(p) else -1
        name = os.path.relpath(p, relative_to) if relative_to else p
        h.update((f"{name}\t{size}" + (f"\t{y}\t{g}" if labels else "") + "\n").encode())
    return h.hexdigest()


class EvalCache:
    """Embeddings (``.npy``) and scores (``.json``) per (model key, labelled set), so re-runs skip both."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, model_key: str, ds: LabelledSet, ext: str) -> Path:
        base, at, view = model_key.partition("@")  # "<weights key>@layer1": a view of the same weights
        folder = self.root / (base[:24] + at + view)
        if ext == ".npy":
            return folder / f"clips-{dataset_key(ds, labels=False)[:16]}.npy"
        return folder / f"{ds.name}-{dataset_key(ds)[:16]}{ext}"

    def get(self, model_key: str, ds: LabelledSet, ext: str):
        p = self._path(model_key, ds, ext)
        if not p.exists():
            return None
        if ext == ".npy":
            return np.load(p)
        d = json.loads(p.read_text())
        return d["scores"] if d.get("version") == SCORE_VERSION else None

    def put(self, model_key: str, ds: LabelledSet, ext: str, value) -> None:
        p = self._path(model_key, ds, ext)
        p.parent.mkdir(parents=True, exist_ok=True)
        if ext == ".npy":
            atomic_write(p, lambda tmp: save_npy(tmp, value))
        else:
            atomic_write(p, json.dumps({"version": SCORE_VERSION, "scores": value}))


def embed_and_score(m, ds: LabelledSet, batch_size: int = 32, layer=None, cache: EvalCache | None = None,
                    on_files: Callable[[int, int], None] | None = None, chunk: int = 256) -> dict:
    """One model's scores on one set, through the cache when the model has a ``cache_key``.

    Files are embedded ``chunk`` at a time (embeddings do not depend on what is batched together) and
    ``on_files(done, total)`` is called after each chunk."""
    key = getattr(m, "cache_key", None) if cache is not None else None
    if layer is not None and key:
        key = f"{key}@layer{layer}"
    if key and (hit := cache.get(key, ds, ".json")) is not None:
        return hit
    x = cache.get(key, ds, ".npy") if key else None
    if x is None:
        kwargs = {"layer": layer} if layer is not None and hasattr(m, "n_layers") else {}
        paths = [str(p) for p in ds.paths]
        parts = []
        for a in range(0, len(paths), chunk):
            parts.append(np.asarray(m.encode(paths[a:a + chunk], batch_size=batch_size, **kwargs), dtype=np.float32))
            if on_files is not None:
                on_files(min(a + chunk, len(paths)), len(paths))
        x = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        if key:
            cache.put(key, ds, ".npy", x)
    res = score(x, ds, standardize=getattr(m, "standardize", False))
    if key:
        cache.put(key, ds, ".json", res)
    return res


def evaluate(models: list, datasets: list[LabelledSet], batch_size: int = 32, log=print,
             layer=None, cache: EvalCache | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Score each model (an object with ``name`` and ``encode(paths)``) on each labelled set.

    Models named ``<name>#seed<k>`` (several seeds of one random-init baseline) are merged into one
    ``<name>`` row: the mean over seeds, with each metric's std over seeds in ``seed_std``.
    ``progress(what, files done, files)`` is called as each model embeds each set.
    Returns ``{"tasks": {task: info}, "results": {model: {task: metrics}}, "seconds": ...}``.
    """
    names = [m.name for m in models]
    if twice := next((n for n in names if names.count(n) > 1), None):
        raise ValueError(f"two models are named {twice!r}: their scores would overwrite each other; "
                         "give each model a distinct name")
    t0 = time.time()
    out: dict = {"tasks": {ds.name: task_info(ds) for ds in datasets}, "results": {}}
    n, i = len(models) * len(datasets), 0
    for m in models:
        res = {}
        for ds in datasets:
            i += 1
            what = f"[{i}/{n}] {m.name} on {ds.name}"
            on_files = (lambda done, total, w=what: progress(w, done, total)) if progress else None
            res[ds.name] = r = embed_and_score(m, ds, batch_size, layer, cache, on_files)
            log(f"  {m.name:32s} {ds.name:18s} probe {r['probe_acc']:.3f}  kNN@10 {r['knn_p10']:.3f}  "
                f"few-shot {r['fewshot_acc']:.3f}  mAP {r['map']:.3f}")
        out["results"][m.name] = res
    out["results"] = merge_seeds(out["results"])
    out["seconds"] = round(time.time() - t0, 1)
    return out


def merge_seeds(results: dict) -> dict:
    """Replace the rows ``<name>#seed<k>`` by one row ``<name>``: per task and metric the mean over seeds,
    ``seed_std`` (std over seeds, ddof 0), ``seed_values`` (one per seed) and ``seeds`` (how many)."""
    merged: dict = {}
    for name, res in results.items():
        base = name.split(SEED_SEP)[0]
        merged.setdefault(base, []).append(res)
    out = {}
    for base, runs in merged.items():
        if len(runs) == 1 and base in results:
            out[base] = runs[0]
            continue
        out[base] = {}
        for task in runs[0]:
            vals = {k: np.array([r[task][k] for r in runs]) for k in runs[0][task] if isinstance(runs[0][task][k],
                                                                                               float | int)}
            row = {k: round(float(v.mean()), 4) for k, v in vals.items()}
            row["seed_std"] = {k: round(float(vals[k].std()), 4) for k in METRICS if k in vals}
            row["seed_values"] = {k: [round(float(v), 4) for v in vals[k]] for k in METRICS if k in vals}
            row["seeds"] = len(runs)
            out[base][task] = row
    return out


def format_table(result: dict, metric: str = "probe_acc") -> str:
    """Markdown table: one row per model, one column per task and the mean; cells are ``metric``
    (``mean ± std over seeds`` for rows averaged over seeds)."""
    tasks = list(result["tasks"])
    lines = ["| model | " + " | ".join(tasks) + " | mean |", "|---|" + "---|" * (len(tasks) + 1)]
    for name, res in result["results"].items():
        cells = [cell(res[t], metric) if t in res and metric in res[t] else "" for t in tasks]
        vals = [res[t][metric] for t in tasks if t in res and metric in res[t]]
        mean = f"{np.mean(vals):.3f}" if vals else ""
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines)


def cell(r: dict, metric: str) -> str:
    """``0.712`` or, for a mean over random seeds, ``0.712 ± 0.004``."""
    sd = r.get("seed_std", {}).get(metric)
    return f"{r[metric]:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")
