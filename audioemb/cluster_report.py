"""Running a clustering on a collection (:mod:`audioemb.collection`) and writing what a person reads.

``cluster_collection`` is what ``audioemb cluster`` runs: it reads an ``embed`` output or an index folder,
clusters it (:mod:`audioemb.cluster`), names each cluster after its exemplars' file names and writes
``assignments.csv``, ``exemplars.json``, ``summary.json``, ``map.json`` and ``map.html`` (the interactive
map that ``audioemb serve`` shows too) and, when matplotlib is installed, a labelled ``map.png``.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._vectors import take
from .cluster import ASSIGN_CHUNK, cluster_scores, kmeans, local_aggregation
from .collection import Collection, read_collection, read_labels
from .fsio import atomic_write, atomic_write_json

__all__ = ["Collection", "cluster_collection", "cluster_name", "cluster_names", "map_data", "project_2d",
           "read_collection", "read_labels"]

PLOT_EXTRA = "pip install 'audioemb[plot]'"


# ------------------------------------------------------------------------------------------------------ names
_SPLIT = re.compile(r"[^0-9A-Za-z\u00C0-\uFFFF]+|(?<=[a-z])(?=[A-Z])")


def _tokens(path: str) -> list[str]:
    p = Path(path)
    words = [w.lower() for part in (*p.parent.parts[-2:], p.stem) for w in _SPLIT.split(part)]
    return [w for w in words if len(w) > 1 and not w.isdigit()]


def cluster_name(paths: list[str], max_words: int = 3) -> str:
    """A short name for a cluster from its exemplars' paths: the words (from the file name and its two
    parent folders) shared by at least half of them, most shared first; else the nearest one's file name."""
    if not paths:
        return "(empty)"
    counts = Counter(w for p in paths for w in dict.fromkeys(_tokens(p)))
    order = {w: i for i, w in enumerate(dict.fromkeys(w for p in paths for w in _tokens(p)))}
    shared = [w for w, c in counts.items() if c >= max(2, (len(paths) + 1) // 2) or len(paths) == 1]
    shared.sort(key=lambda w: (-counts[w], order[w]))
    return " ".join(shared[:max_words]) if shared else Path(paths[0]).stem


def cluster_names(exemplars: list[dict]) -> list[str]:
    """Names for the clusters of ``exemplars.json`` entries, made unique with the cluster number."""
    names = [cluster_name([e["path"] for e in c["exemplars"]]) for c in exemplars]
    dup = Counter(names)
    return [f"{n} #{c['cluster']}" if dup[n] > 1 else n for n, c in zip(names, exemplars)]


# -------------------------------------------------------------------------------------------------------- map
def project_2d(x: np.ndarray, max_points: int = 20000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the points kept, (n, 2) PCA coordinates): at most ``max_points`` points, sampled."""
    n = len(x)
    pick = np.sort(np.random.default_rng(seed).choice(n, min(n, max_points), replace=False))
    xs = np.asarray(take(x, pick), np.float64)  # scattered rows of a memory map: read, not mapped
    xs = xs - xs.mean(axis=0)
    if len(xs) < 2:
        return pick, np.zeros((len(xs), 2))
    vt = np.linalg.svd(xs, full_matrices=False)[2]
    xy = xs @ vt[:2].T
    if xy.shape[1] < 2:
        xy = np.c_[xy, np.zeros(len(xy))]
    return pick, xy


def map_data(items: list[dict], xy: np.ndarray, labels: np.ndarray | None, clusters: list[dict]) -> dict:
    """The map as columns (what ``map.json``, ``map.html`` and ``/api/map`` hold)."""
    paths = list(dict.fromkeys(it["path"] for it in items))
    pid = {p: i for i, p in enumerate(paths)}
    return {"projection": "PCA", "x": [round(float(v), 5) for v in xy[:, 0]],
            "y": [round(float(v), 5) for v in xy[:, 1]],
            "cluster": [-1] * len(items) if labels is None else [int(c) for c in labels],
            "path": [pid[it["path"]] for it in items], "start": [float(it.get("start") or 0.0) for it in items],
            "end": [float(it.get("end") or 0.0) for it in items], "paths": paths, "clusters": clusters}


# ---------------------------------------------------------------------------------------------------- running
def cluster_collection(source: str | os.PathLike, out: str | os.PathLike, method: str = "kmeans",
                       k: int | None = None, eval_labels: str | os.PathLike | None = None, seed: int = 0,
                       n_exemplars: int = 5, k_range: tuple[int, int] | None = None,
                       criterion: str | None = None, root: str | os.PathLike | None = None,
                       on_step: Callable[[str, int, int], None] | None = None) -> dict:
    """Cluster an embed output or index folder and write OUT/assignments.csv, exemplars.json, summary.json,
    map.json, map.html and (with matplotlib) map.png; ``root`` is the audio folder an embed output was made
    from (an index knows its own), so that a click on map.html plays the file. With ``eval_labels`` (CSV
    path,label) the summary holds NMI/ARI/purity; for ``local-aggregation`` those of plain k-means with the
    same k too. ``on_step(stage, done, total)`` reports progress. Returns the summary."""
    if method not in ("kmeans", "local-aggregation"):
        raise ValueError(f"method must be kmeans or local-aggregation, got {method!r}")
    col = read_collection(source)
    if not len(col.vectors):
        raise ValueError(f"{source}: no embedded items to cluster")
    labels_by_path = read_labels(eval_labels) if eval_labels is not None else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    opts = {"k_range": k_range, "criterion": criterion, "on_k": (lambda d, t: on_step("choosing k", d, t))
            if on_step else None}
    if method == "kmeans":
        res = kmeans(col.vectors, k, seed, **opts)
    else:
        res = local_aggregation(col.vectors, k, seed=seed, **opts)
    segs = col.kind == "index"

    def write_assignments(tmp: Path) -> None:  # streamed: a row per item, never the whole text in memory
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["path", *(["start", "end"] if segs else []), "cluster", "distance"])
            for s in range(0, len(col.items), ASSIGN_CHUNK):
                e = s + ASSIGN_CHUNK
                for it, c, dist in zip(col.items[s:e], res.labels[s:e].tolist(), res.distances[s:e].tolist()):
                    w.writerow([it["path"], *([f"{it['start']:.3f}", f"{it['end']:.3f}"] if segs else []), c,
                                f"{dist:.6f}"])

    atomic_write(out / "assignments.csv", write_assignments)
    sizes = np.bincount(res.labels, minlength=res.k)
    exemplars = []
    for c in range(res.k):
        members = np.flatnonzero(res.labels == c)
        best = members[np.argsort(res.distances[members], kind="stable")[:n_exemplars]]
        exemplars.append({"cluster": c, "size": int(sizes[c]),
                          "exemplars": [{**col.items[i], "distance": round(float(res.distances[i]), 6)} for i in best]})
    for c, name in zip(exemplars, cluster_names(exemplars)):
        c["name"] = name
    atomic_write_json(out / "exemplars.json", exemplars, indent=1)
    summary = {"source": str(source), "kind": col.kind, "model": col.model, "method": method, "n": len(col.items),
               "dim": int(col.vectors.shape[1]), "k": res.k, "k_chosen_by": None if k else res.info.get("criterion"),
               "silhouette": res.silhouette, "sizes": sizes.tolist(), "names": [c["name"] for c in exemplars],
               "info": {str(a): b for a, b in res.info.items()}, "scores": None}
    if labels_by_path is not None:
        have = np.array([it["path"] in labels_by_path for it in col.items])
        if not have.any():
            raise ValueError(f"{eval_labels}: no path matches the collection's paths (e.g. {col.items[0]['path']!r})")
        truth = [labels_by_path[it["path"]] for it, h in zip(col.items, have) if h]
        scores = {method: cluster_scores(truth, res.labels[have])}
        if method == "local-aggregation":
            scores["kmeans"] = cluster_scores(truth, kmeans(col.vectors, res.k, seed).labels[have])
        summary["scores"] = scores
        summary["eval"] = {"labels": str(eval_labels), "n_labelled": int(have.sum()),
                           "n_unlabelled": int((~have).sum())}
    if k and res.k < k:  # more clusters asked for than there are items
        summary["k_asked"] = int(k)
    summary["exemplars"] = [[e["path"] for e in c["exemplars"][:3]] for c in exemplars]
    if on_step:
        on_step("drawing the map", 0, 1)
    pick, xy = project_2d(col.vectors, seed=seed)
    mp = map_data([col.items[i] for i in pick], xy, res.labels[pick],
                  [{"id": c["cluster"], "name": c["name"], "size": c["size"]} for c in exemplars])
    mp["root"] = str(Path(root).resolve()) if root is not None else col.root
    atomic_write_json(out / "map.json", mp, indent=None)
    from .cluster_plot import write_html_map, write_png_map

    title = f"{Path(source).name}: {method}, k={res.k}"
    write_html_map(mp, out / "map.html", title)
    summary["outputs"] = ["assignments.csv", "exemplars.json", "summary.json", "map.json", "map.html"]
    summary["map_png"] = write_png_map(mp, out / "map.png", title)
    if summary["map_png"] is None:
        summary["outputs_missing"] = {"map.png": f"matplotlib is not installed; {PLOT_EXTRA} gives the PNG map"}
    else:
        summary["outputs"].append("map.png")
    atomic_write_json(out / "summary.json", summary, indent=1)
    if on_step:
        on_step("drawing the map", 1, 1)
    return summary
