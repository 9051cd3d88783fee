"""Clustering an embedded collection: spherical k-means on faiss, and Local Aggregation.

- :func:`kmeans`: spherical k-means (faiss, Johnson et al. 2019) on L2-normalised vectors; without ``k`` it
  is chosen by :func:`choose_k` from silhouette, Calinski-Harabasz or Davies-Bouldin scores over 2..50,
  with a floor of min(10, sqrt(N/2)) that only clearly separated groups can go below.
- :func:`local_aggregation`: Local Aggregation (Zhuang, Zhai & Yamins, "Local Aggregation for Unsupervised
  Learning of Visual Embeddings", ICCV 2019) applied to a fixed collection: a linear projection of the
  embeddings is adapted so that each point moves toward its close neighbours and away from its background
  neighbours, then the adapted vectors are clustered with k-means. Plain numpy with hand-written
  gradients: no torch needed.
- :func:`cluster_scores`: NMI, ARI and purity against reference labels.
- reading collections and writing the report (``cluster_collection``): :mod:`audioemb.cluster_report`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _faiss
from ._vectors import l2_normalize, release, take
from .cluster_metrics import (
    CRITERIA,
    calinski_harabasz,
    choose_k,
    cluster_scores,
    davies_bouldin,
    default_k_range,
    silhouette,
)
from .fsio import open_memmap_allocated

__all__ = ["CRITERIA", "ClusterResult", "calinski_harabasz", "choose_k", "cluster_scores", "davies_bouldin",
           "default_k_range", "kmeans", "la_loss_grad", "local_aggregation", "silhouette"]


TRAIN_POINTS_PER_CENTROID = 256  # faiss's max_points_per_centroid: k-means trains on a sample of this size
ASSIGN_CHUNK = 65536  # rows assigned to centroids at a time


@dataclass
class ClusterResult:
    """Labels (N,) in [0, k), unit-norm centroids (k, D), each point's cosine distance 1 - x·c to its
    centroid, k, and the silhouette score (None when undefined). ``embeddings`` are the vectors that were
    clustered (for local aggregation: the adapted ones, where centroids and distances live), None when they
    were read in chunks from a memory map or row view."""

    labels: np.ndarray
    centroids: np.ndarray
    distances: np.ndarray
    k: int
    silhouette: float | None
    embeddings: np.ndarray | None = None
    info: dict = field(default_factory=dict)


def _kmeans_once(x: np.ndarray, k: int, seed: int, niter: int = 25, nredo: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means of unit vectors ``x``: (labels, unit-norm centroids)."""
    labels, centroids = _faiss.kmeans(x, k, niter=niter, nredo=nredo, seed=seed, spherical=True)
    return labels, l2_normalize(centroids)


def kmeans(x: np.ndarray, k: int | None = None, seed: int = 0, k_range: tuple[int, int] | None = None,
           sample: int = 5000, niter: int = 25, nredo: int = 3, criterion: str | None = None,
           on_k=None) -> ClusterResult:
    """Spherical k-means of ``x`` (rows are L2-normalised first) on faiss.

    Without ``k``, every k from 2 to the ceiling of ``k_range`` (default :func:`default_k_range`) is
    clustered on a random sample of at most ``sample`` points and scored by silhouette, Calinski-Harabasz
    and Davies-Bouldin; :func:`choose_k` keeps one by ``criterion`` (default silhouette) above the floor,
    and all points are then clustered with it: faiss trains on at most 256·k of them, then every point is
    assigned to its nearest centroid in chunks, so ``x`` may be a memory map or row view larger than
    memory. ``nredo`` restarts keep the best objective. ``on_k(done, total)`` reports progress.
    """
    criterion = criterion or "silhouette"
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}; got {criterion!r}")
    lazy = not _in_memory(x)  # a memory map or a row view: read in chunks, never copied whole
    if not lazy:
        x = l2_normalize(x)
    n = len(x)
    if n == 0:
        raise ValueError("nothing to cluster: no vectors")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n, min(n, sample), replace=False))
    xs = l2_normalize(take(x, pick)) if lazy else x[pick]  # scattered rows of a memory map: read, not mapped
    tried: dict[int, dict] = {}
    info: dict = {}
    if k is None:
        floor, ceiling = k_range or default_k_range(n)
        top = min(ceiling, len(pick) - 1, distinct_rows(xs))  # more groups than distinct vectors leaves some empty
        floor = min(floor, max(top, 2))
        ks = list(range(2, top + 1))
        for i, kk in enumerate(ks):
            lab = _kmeans_once(xs, kk, seed, niter, nredo)[0]
            tried[kk] = {"silhouette": silhouette(xs, lab), "calinski-harabasz": calinski_harabasz(xs, lab),
                         "davies-bouldin": davies_bouldin(xs, lab)}
            if on_k:
                on_k(i + 1, len(ks))
        k = choose_k(tried, criterion, floor) if tried else 1
        info = {"criterion": criterion, "k_range": [floor, ceiling],
                "scores_by_k": {kk: {c: None if v is None else round(v, 5) for c, v in d.items()}
                                for kk, d in tried.items()}}
    k = max(1, min(int(k), n))
    limit = TRAIN_POINTS_PER_CENTROID * k  # faiss trains on at most this many points anyway
    train = x[:] if n <= limit else take(x, np.sort(rng.choice(n, limit, replace=False)))
    cents = _kmeans_once(l2_normalize(train) if lazy else train, k, seed, niter, nredo)[1]
    labels, distances = assign(x, cents, normalize=lazy)
    s = silhouette(xs, labels[pick])
    return ClusterResult(labels, cents, distances, int(k), s, None if lazy else x, info)


def distinct_rows(x: np.ndarray, decimals: int = 6) -> int:
    """How many different vectors ``x`` holds (rows equal to ``decimals`` places count once): copies of one
    file embed identically."""
    return len(np.unique(np.round(np.asarray(x, np.float64), decimals), axis=0)) if len(x) else 0


def assign(x, centroids: np.ndarray, chunk: int = ASSIGN_CHUNK, normalize: bool = True
           ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest unit-norm centroid by cosine and its distance 1 - x·c, (N,) int64 and float32.
    ``x`` (rows L2-normalised here unless ``normalize=False``) is read ``chunk`` rows at a time, so it may be
    a memory map or a :class:`audioemb._vectors.RowView` larger than memory."""
    n = len(x)
    labels, distances = np.empty(n, np.int64), np.empty(n, np.float32)
    for s in range(0, n, chunk):
        xc = x[s:s + chunk]
        sims = (l2_normalize(xc) if normalize else xc) @ centroids.T
        lab = sims.argmax(axis=1)
        # a cosine distance is >= 0: rounding below it (a copy of the centroid) would print as -0.000000
        labels[s:s + chunk], distances[s:s + chunk] = lab, np.maximum(1.0 - sims[np.arange(len(lab)), lab], 0.0)
        release(x)
    return labels, distances


def _in_memory(x) -> bool:
    return isinstance(x, np.ndarray) and not isinstance(x, np.memmap) and not isinstance(x.base, np.memmap)


def local_aggregation(x: np.ndarray, k: int | None = None, dim: int = 64, epochs: int = 6, batch_size: int = 256,
                      background: int = 128, clusters: int | None = None, clusterings: int = 3,
                      temperature: float = 0.07, bank_momentum: float = 0.5, lr: float = 0.05,
                      momentum: float = 0.9, weight_decay: float = 1e-4, refresh: int = 2, max_train: int = 20000,
                      seed: int = 0, k_range: tuple[int, int] | None = None, criterion: str | None = None,
                      on_k=None) -> ClusterResult:
    """Local Aggregation (Zhuang, Zhai & Yamins, 2019) on a fixed collection, then k-means.

    A linear map W (D x ``dim``, initialised with the top principal directions) gives v_i = x_i W / |x_i W|.
    A memory bank holds every point's v (updated with ``bank_momentum`` after each step). Each epoch:
    the background neighbours B_i are the ``background`` nearest bank entries of each point, and the close
    neighbours C_i are the points sharing its cluster in any of ``clusterings`` k-means runs (different
    seeds) with ``clusters`` centroids on the bank. SGD (``lr``, ``momentum``, ``weight_decay``) on W
    minimises -log( sum_{j in C∩B} exp(v_i·m_j/τ) / sum_{j in B} exp(v_i·m_j/τ) ), τ = ``temperature``.
    W is trained on at most ``max_train`` points; all points are then projected and clustered with
    :func:`kmeans` (k chosen automatically when None, see :func:`choose_k`). ``clusters`` defaults to 2·k
    (or 2x the k chosen on the raw vectors), so the close neighbourhoods stay local. A memory map or row
    view ``x`` is read in chunks: its projections go through a temporary file, never all in memory.
    """
    lazy = not _in_memory(x)  # a memory map or row view: sampled with pread, projected in chunks
    if not lazy:
        x = l2_normalize(x)
    n, d = x.shape
    if n < 3:
        return kmeans(x, k, seed)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n, min(n, max_train), replace=False))
    train = l2_normalize(take(x, pick)) if lazy else x[pick]
    nt = len(train)
    k_hint = k or kmeans(train, None, seed, k_range, criterion=criterion).k
    clusters = max(2, min(clusters or 2 * k_hint, nt - 1))
    p = min(dim, d)
    centred = train - train.mean(axis=0)
    w = np.linalg.svd(centred, full_matrices=False)[2][:p].T.astype(np.float32).copy()  # (d, p)
    vel = np.zeros_like(w)
    bank = l2_normalize(train @ w)
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
            bank[idx] = l2_normalize(bank_momentum * bank[idx] + (1 - bank_momentum) * v)
        losses.append(total / nt)
    if lazy:
        res = _project_and_cluster(x, w, k, seed, k_range, criterion, on_k)
    else:
        res = kmeans(l2_normalize(x @ w), k, seed, k_range, criterion=criterion, on_k=on_k)
    res.info.update(loss_by_epoch=[round(v, 4) for v in losses], clusters=clusters, projection_dim=p,
                    trained_on=nt)
    return res


def _project_and_cluster(x, w: np.ndarray, k, seed, k_range, criterion, on_k) -> ClusterResult:
    """k-means of every row of ``x`` (larger than memory) projected by ``w``: the projections go to a temporary
    memory-mapped file, ``ASSIGN_CHUNK`` rows at a time, and are clustered from there."""
    with tempfile.TemporaryDirectory(prefix="audioemb-la-") as tmp:
        z = open_memmap_allocated(Path(tmp) / "z.npy", np.float32, (len(x), w.shape[1]))
        for s in range(0, len(x), ASSIGN_CHUNK):
            z[s:s + ASSIGN_CHUNK] = l2_normalize(l2_normalize(x[s:s + ASSIGN_CHUNK]) @ w)
            release(x)
        z.flush()
        res = kmeans(z, k, seed, k_range, criterion=criterion, on_k=on_k)
        del z
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


def _neighbours(bank: np.ndarray, kb: int, seed: int) -> np.ndarray:
    """Each bank entry's ``kb`` nearest entries, itself first (B_i need not be exact: :func:`audioemb._faiss.neighbours`
    probes about 4·kb candidates on large banks). Missing neighbours are -1."""
    n = len(bank)
    nb = _faiss.neighbours(bank, kb, seed=seed)
    nb[nb == np.arange(n)[:, None]] = -1
    return np.concatenate([np.arange(n)[:, None], nb[:, :-1]], axis=1)  # i itself first, in B_i and C_i


def __getattr__(name: str):
    """``read_collection``, ``read_labels`` and ``cluster_collection`` live in :mod:`audioemb.cluster_report`."""
    if name in ("Collection", "read_collection", "read_labels", "cluster_collection"):
        from . import cluster_report

        return getattr(cluster_report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
