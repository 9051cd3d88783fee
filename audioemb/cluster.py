"""Clustering an embedded collection: spherical k-means on faiss, and Local Aggregation.

- :func:`kmeans`: spherical k-means (faiss, Johnson et al. 2019) on L2-normalised vectors; without ``k`` it
  is chosen by the silhouette score (cosine distance, on a sample of at most 5000 points) over 2..30.
- :func:`local_aggregation`: Local Aggregation (Zhuang, Zhai & Yamins, "Local Aggregation for Unsupervised
  Learning of Visual Embeddings", ICCV 2019) applied to a fixed collection: a linear projection of the
  embeddings is adapted so that each point moves toward its close neighbours and away from its background
  neighbours, then the adapted vectors are clustered with k-means. Plain numpy with hand-written
  gradients: no torch needed.
- :func:`cluster_scores`: NMI, ARI and purity against reference labels.
- :func:`cluster_collection`: what ``audioemb cluster`` runs on an ``embed`` output or an index folder.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ClusterResult:
    """Labels (N,) in [0, k), unit-norm centroids (k, D), each point's cosine distance 1 - x·c to its
    centroid, k, and the silhouette score (None when undefined). ``embeddings`` are the vectors that were
    clustered (for local aggregation: the adapted ones, where centroids and distances live)."""

    labels: np.ndarray
    centroids: np.ndarray
    distances: np.ndarray
    k: int
    silhouette: float | None
    embeddings: np.ndarray | None = None
    info: dict = field(default_factory=dict)


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _kmeans_once(x: np.ndarray, k: int, seed: int, niter: int = 25, nredo: int = 3) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    km = faiss.Kmeans(x.shape[1], k, niter=niter, nredo=nredo, seed=seed, spherical=True, verbose=False,
                      min_points_per_centroid=1)
    km.train(np.ascontiguousarray(x))
    _, labels = km.index.search(np.ascontiguousarray(x), 1)
    return labels[:, 0].astype(np.int64), _l2(km.centroids)


def silhouette(x: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean silhouette (Rousseeuw, 1987) with cosine distance of unit vectors ``x``; None if undefined.

    Same value as ``sklearn.metrics.silhouette_score(x, labels, metric="cosine")``, but computed from
    per-cluster sums in O(N·k·D) instead of the O(N²) distance matrix.
    """
    _, lab = np.unique(labels, return_inverse=True)
    n, k = len(lab), lab.max() + 1 if len(lab) else 0
    if not 2 <= k <= n - 1:
        return None
    x = np.asarray(x, np.float64)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, lab, x)
    counts = np.bincount(lab, minlength=k).astype(np.float64)
    dist_sum = counts[None, :] - x @ sums.T  # (N, k): sum over each cluster of 1 - x_i·x_j (self term is 0)
    own = counts[lab]
    a = dist_sum[np.arange(n), lab] / np.maximum(own - 1, 1)
    other = dist_sum / counts[None, :]
    other[np.arange(n), lab] = np.inf
    b = other.min(axis=1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def kmeans(x: np.ndarray, k: int | None = None, seed: int = 0, k_range: tuple[int, int] = (2, 30),
           sample: int = 5000, niter: int = 25, nredo: int = 3) -> ClusterResult:
    """Spherical k-means of ``x`` (rows are L2-normalised first) on faiss.

    Without ``k``, every k in ``k_range`` (capped at N-1) is tried and the one with the best silhouette on
    a random sample of at most ``sample`` points is kept. ``nredo`` restarts keep the best objective.
    """
    x = _l2(x)
    n = len(x)
    if n == 0:
        raise ValueError("nothing to cluster: no vectors")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n, min(n, sample), replace=False))
    tried = {}
    if k is None:
        best = None
        for kk in range(k_range[0], min(k_range[1], n - 1) + 1):
            labels, cents = _kmeans_once(x, kk, seed, niter, nredo)
            s = silhouette(x[pick], labels[pick])
            tried[kk] = s
            if s is not None and (best is None or s > best[0]):
                best = (s, kk, labels, cents)
        if best is None:  # fewer than 3 points
            k = 1
        else:
            s, k, labels, cents = best
    if k is not None and (not tried or k not in tried):
        k = max(1, min(int(k), n))
        labels, cents = _kmeans_once(x, k, seed, niter, nredo)
        s = silhouette(x[pick], labels[pick])
    distances = 1.0 - np.einsum("nd,nd->n", x, cents[labels])
    return ClusterResult(labels, cents, distances.astype(np.float32), int(k), s, x,
                         {"silhouette_by_k": tried} if tried else {})


def local_aggregation(x: np.ndarray, k: int | None = None, dim: int = 64, epochs: int = 6, batch_size: int = 256,
                      background: int = 128, clusters: int | None = None, clusterings: int = 3,
                      temperature: float = 0.07, bank_momentum: float = 0.5, lr: float = 0.05,
                      momentum: float = 0.9, weight_decay: float = 1e-4, refresh: int = 2, max_train: int = 20000,
                      seed: int = 0, k_range: tuple[int, int] = (2, 30)) -> ClusterResult:
    """Local Aggregation (Zhuang, Zhai & Yamins, 2019) on a fixed collection, then k-means.

    A linear map W (D x ``dim``, initialised with the top principal directions) gives v_i = x_i W / |x_i W|.
    A memory bank holds every point's v (updated with ``bank_momentum`` after each step). Each epoch:
    the background neighbours B_i are the ``background`` nearest bank entries of each point, and the close
    neighbours C_i are the points sharing its cluster in any of ``clusterings`` k-means runs (different
    seeds) with ``clusters`` centroids on the bank. SGD (``lr``, ``momentum``, ``weight_decay``) on W
    minimises -log( sum_{j in C∩B} exp(v_i·m_j/τ) / sum_{j in B} exp(v_i·m_j/τ) ), τ = ``temperature``.
    W is trained on at most ``max_train`` points; all points are then projected and clustered with
    :func:`kmeans` (k chosen by silhouette when None). ``clusters`` defaults to 2·k (or 2x the k that the
    silhouette picks on the raw vectors), so the close neighbourhoods stay local.
    """
    x = _l2(x)
    n, d = x.shape
    if n < 3:
        return kmeans(x, k, seed)
    rng = np.random.default_rng(seed)
    train = x[np.sort(rng.choice(n, min(n, max_train), replace=False))]
    nt = len(train)
    k_hint = k or kmeans(train, None, seed, k_range).k
    clusters = max(2, min(clusters or 2 * k_hint, nt - 1))
    p = min(dim, d)
    centred = train - train.mean(axis=0)
    w = np.linalg.svd(centred, full_matrices=False)[2][:p].T.astype(np.float32).copy()  # (d, p)
    vel = np.zeros_like(w)
    bank = _l2(train @ w)
    kb = min(background, nt)
    losses = []
    for epoch in range(epochs):
        labels = np.stack([_kmeans_once(bank, clusters, seed + 1000 * epoch + h, niter=15, nredo=1)[0]
                           for h in range(clusterings)])  # (H, nt)
        if epoch % refresh == 0:
            neighbours = _neighbours(bank, kb, seed + epoch)  # (nt, kb): B_i, own entry first, -1 = none
        total = 0.0
        for idx in np.array_split(rng.permutation(nt), max(1, nt // batch_size)):
            bg = neighbours[idx]
            valid = bg >= 0
            bg = np.where(valid, bg, idx[:, None])
            close = (labels[:, bg] == labels[:, idx][:, :, None]).any(axis=0) & valid
            close[:, 0] = True
            loss, grad, v = la_loss_grad(w, train[idx], bank[bg], valid, close, temperature)
            total += loss * len(idx)
            grad += weight_decay * w
            vel = momentum * vel + grad
            w -= lr * vel
            bank[idx] = _l2(bank_momentum * bank[idx] + (1 - bank_momentum) * v)
        losses.append(total / nt)
    z = _l2(x @ w)
    res = kmeans(z, k, seed, k_range)
    res.info.update(loss_by_epoch=[round(v, 4) for v in losses], clusters=clusters, projection_dim=p,
                    trained_on=nt)
    return res


def la_loss_grad(w: np.ndarray, xb: np.ndarray, mb: np.ndarray, valid: np.ndarray, close: np.ndarray,
                 temperature: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Local Aggregation loss of a batch (Zhuang et al., 2019, eq. 3), its gradient with respect to W, and v.

    v_i = x_i W / |x_i W|; ``mb`` (B, kb, p) holds the memory-bank entries of each point's background
    neighbours (``valid`` marks real ones), ``close`` which of them are close neighbours. The loss is the
    batch mean of logsumexp_{B_i}(v_i·m_j/τ) - logsumexp_{C_i∩B_i}(v_i·m_j/τ); the bank gets no gradient.
    """
    u = xb @ w
    norm = np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    v = u / norm
    s = np.matmul(mb, v[:, :, None])[:, :, 0] / temperature
    e = np.where(valid, np.exp(s - s.max(axis=1, keepdims=True)), 0.0)
    ec = np.where(close, e, 0.0)
    loss = float(np.mean(np.log(e.sum(axis=1)) - np.log(ec.sum(axis=1))))
    d_s = (e / e.sum(axis=1, keepdims=True) - ec / ec.sum(axis=1, keepdims=True)) / temperature / len(xb)
    g_v = np.matmul(d_s[:, None, :], mb)[:, 0]
    g_u = (g_v - np.sum(g_v * v, axis=1, keepdims=True) * v) / norm
    return loss, xb.T @ g_u, v


def _neighbours(bank: np.ndarray, kb: int, seed: int, exact_below: int = 4000) -> np.ndarray:
    """Each bank entry's ``kb`` nearest entries (itself first): exact for small banks, else faiss IVF with
    enough lists probed to see ~4·kb candidates (B_i need not be exact). Missing neighbours are -1."""
    import faiss

    n, p = bank.shape
    if n <= exact_below:
        index = faiss.IndexFlatIP(p)
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(p), p, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed, index.cp.min_points_per_centroid = seed, 1
        index.train(bank)
        index.nprobe = min(nlist, int(np.ceil(4 * kb * nlist / n)))
    index.add(bank)
    _, nb = index.search(bank, kb)
    own = nb == np.arange(n)[:, None]
    nb[own] = -1
    nb = np.concatenate([np.arange(n)[:, None], nb[:, :-1]], axis=1)  # i itself first, in B_i and C_i
    return nb


def cluster_scores(labels_true, labels_pred) -> dict:
    """NMI and ARI (sklearn) and purity: the fraction of points whose cluster's majority label is theirs."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    _, t = np.unique(np.asarray(labels_true), return_inverse=True)
    _, c = np.unique(np.asarray(labels_pred), return_inverse=True)
    if len(t) != len(c):
        raise ValueError(f"{len(t)} true labels but {len(c)} predicted labels")
    table = np.zeros((c.max() + 1, t.max() + 1), np.int64)
    np.add.at(table, (c, t), 1)
    return {"nmi": float(normalized_mutual_info_score(t, c)), "ari": float(adjusted_rand_score(t, c)),
            "purity": float(table.max(axis=1).sum() / len(t))}


# ------------------------------------------------------------------------------------------------ collections
@dataclass
class Collection:
    """Vectors of an embed output or index, with one item ({path[, start, end]}) per row."""

    vectors: np.ndarray
    items: list[dict]
    kind: str  # "embed" or "index"
    model: str | None


def read_collection(path: str | os.PathLike) -> Collection:
    """Read an ``audioemb embed`` output folder or an index folder (from ``audioemb index build``)."""
    path = Path(path)
    if (path / "current.json").exists():
        from .index import Index

        idx = Index.load(path)
        vecs, recs = idx.items()
        return Collection(vecs, [{"path": r["path"], "start": r["start"], "end": r["end"]} for r in recs], "index",
                          idx.info["model"])
    if (path / "manifest.jsonl").exists() or (path / "parts").is_dir():
        from .embed import read_embeddings

        emb, records = read_embeddings(path)
        info = json.loads((path / "info.json").read_text()) if (path / "info.json").exists() else {}
        rows = [r for r in records if r.get("row") is not None]
        return Collection(np.asarray(emb[[r["row"] for r in rows]], np.float32), [{"path": r["path"]} for r in rows],
                          "embed", info.get("model"))
    raise FileNotFoundError(f"{path}: neither an `audioemb embed` output (manifest.jsonl) nor an index "
                            "(current.json)")


def read_labels(csv_path: str | os.PathLike) -> dict[str, str]:
    """{path: label} from a CSV with columns path,label."""
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{csv_path}: needs a header with columns path,label (got {reader.fieldnames})")
        return {row["path"]: row["label"] for row in reader}


def plot_map(x: np.ndarray, labels: np.ndarray, out: str | os.PathLike, title: str = "", max_points: int = 50000,
             seed: int = 0) -> None:
    """A PNG scatter of ``x`` projected on its first two principal components, coloured by cluster."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(x), min(len(x), max_points), replace=False))
    xs = np.asarray(x[pick], np.float64)
    xs = xs - xs.mean(axis=0)
    vt = np.linalg.svd(xs, full_matrices=False)[2] if len(xs) > 1 else np.eye(xs.shape[1])
    xy = xs @ vt[:2].T if vt.shape[0] >= 2 else np.c_[xs @ vt[:1].T, np.zeros(len(xs))]
    fig = Figure(figsize=(7, 6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    top = int(labels.max())
    cmap, n_colours = ("tab10", 10) if top < 10 else ("tab20", 20) if top < 20 else ("turbo", top + 1)
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels[pick], cmap=cmap, vmin=-0.5, vmax=n_colours - 0.5,
                    s=float(np.clip(4000 / len(pick), 4, 40)), alpha=0.8, linewidths=0)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    if top < 20:
        ax.legend(*sc.legend_elements(), title="cluster", fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out)


def cluster_collection(source: str | os.PathLike, out: str | os.PathLike, method: str = "kmeans",
                       k: int | None = None, eval_labels: str | os.PathLike | None = None, seed: int = 0,
                       n_exemplars: int = 5) -> dict:
    """Cluster an embed output or index folder and write OUT/assignments.csv, exemplars.json, summary.json
    and map.png. With ``eval_labels`` (CSV path,label) the summary holds NMI/ARI/purity; for
    ``local-aggregation`` those of plain k-means with the same k too. Returns the summary."""
    if method not in ("kmeans", "local-aggregation"):
        raise ValueError(f"method must be kmeans or local-aggregation, got {method!r}")
    col = read_collection(source)
    if not len(col.vectors):
        raise ValueError(f"{source}: no embedded items to cluster")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res = kmeans(col.vectors, k, seed) if method == "kmeans" else local_aggregation(col.vectors, k, seed=seed)
    segs = col.kind == "index"
    with open(out / "assignments.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", *(["start", "end"] if segs else []), "cluster", "distance"])
        for it, c, dist in zip(col.items, res.labels, res.distances):
            w.writerow([it["path"], *([f"{it['start']:.3f}", f"{it['end']:.3f}"] if segs else []), int(c),
                        f"{dist:.6f}"])
    sizes = np.bincount(res.labels, minlength=res.k)
    exemplars = []
    for c in range(res.k):
        members = np.flatnonzero(res.labels == c)
        best = members[np.argsort(res.distances[members], kind="stable")[:n_exemplars]]
        exemplars.append({"cluster": c, "size": int(sizes[c]),
                          "exemplars": [{**col.items[i], "distance": round(float(res.distances[i]), 6)} for i in best]})
    (out / "exemplars.json").write_text(json.dumps(exemplars, indent=1, ensure_ascii=False))
    summary = {"source": str(source), "kind": col.kind, "model": col.model, "method": method, "n": len(col.items),
               "dim": int(col.vectors.shape[1]), "k": res.k, "silhouette": res.silhouette,
               "sizes": sizes.tolist(), "info": {str(a): b for a, b in res.info.items()}, "scores": None}
    if eval_labels is not None:
        labels = read_labels(eval_labels)
        have = np.array([it["path"] in labels for it in col.items])
        if not have.any():
            raise ValueError(f"{eval_labels}: no path matches the collection's paths (e.g. {col.items[0]['path']!r})")
        truth = [labels[it["path"]] for it, h in zip(col.items, have) if h]
        scores = {method: cluster_scores(truth, res.labels[have])}
        if method == "local-aggregation":
            scores["kmeans"] = cluster_scores(truth, kmeans(col.vectors, res.k, seed).labels[have])
        summary["scores"] = scores
        summary["eval"] = {"labels": str(eval_labels), "n_labelled": int(have.sum()),
                           "n_unlabelled": int((~have).sum())}
    summary["exemplars"] = [[e["path"] for e in c["exemplars"][:3]] for c in exemplars]
    (out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    plot_map(col.vectors, res.labels, out / "map.png", f"{Path(source).name}: {method}, k={res.k} (PCA)", seed=seed)
    return summary
