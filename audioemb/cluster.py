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

from dataclasses import dataclass, field

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


CRITERIA = ("silhouette", "calinski-harabasz", "davies-bouldin")


def _centroids(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x as float64, labels as 0..k-1, cluster sizes, Euclidean cluster means)."""
    _, lab = np.unique(labels, return_inverse=True)
    x = np.asarray(x, np.float64)
    k = lab.max() + 1 if len(lab) else 0
    counts = np.bincount(lab, minlength=k).astype(np.float64)
    cents = np.zeros((k, x.shape[1]))
    np.add.at(cents, lab, x)
    return x, lab, counts, cents / np.maximum(counts[:, None], 1)


def calinski_harabasz(x: np.ndarray, labels: np.ndarray) -> float | None:
    """Calinski-Harabasz index (Calinski & Harabasz, 1974): between- over within-cluster dispersion, each
    divided by its degrees of freedom; higher is better. None when k < 2 or k >= N."""
    x, lab, counts, cents = _centroids(x, labels)
    n, k = len(lab), len(counts)
    if not 2 <= k < n:
        return None
    within = float(((x - cents[lab]) ** 2).sum())
    between = float((counts * ((cents - x.mean(axis=0)) ** 2).sum(axis=1)).sum())
    return float("inf") if within == 0 else between * (n - k) / (within * (k - 1))


def davies_bouldin(x: np.ndarray, labels: np.ndarray) -> float | None:
    """Davies-Bouldin index (Davies & Bouldin, 1979): mean over clusters of the worst (s_i + s_j) / d_ij,
    s = mean distance to the centroid, d = distance between centroids; lower is better. None when k < 2."""
    x, lab, counts, cents = _centroids(x, labels)
    k = len(counts)
    if k < 2:
        return None
    spread = np.bincount(lab, np.linalg.norm(x - cents[lab], axis=1), minlength=k) / counts
    d = np.linalg.norm(cents[:, None] - cents[None], axis=2)
    np.fill_diagonal(d, np.inf)
    return float(np.max((spread[:, None] + spread[None]) / np.maximum(d, 1e-12), axis=1).mean())


def default_k_range(n: int) -> tuple[int, int]:
    """(floor, ceiling) of automatic k for ``n`` items: floor min(10, round(sqrt(n / 2))), at least 2; ceiling
    min(50, n - 1). The floor is the rule-of-thumb k = sqrt(n/2) (Mardia et al., 1979), capped so that big
    collections still start at a readable 10 groups; see :func:`choose_k` for when a smaller k wins."""
    ceiling = max(1, min(50, n - 1))
    return min(ceiling, max(2, min(10, int(round(np.sqrt(n / 2)))))), ceiling


def choose_k(scores: dict[int, dict], criterion: str, floor: int, strong: float = 0.5, margin: float = 0.1) -> int:
    """The k to keep from ``scores`` ({k: {criterion: value}}): the best by ``criterion`` among k >= ``floor``.
    A k below the floor wins only with a silhouette showing reasonable structure (>= ``strong``, Kaufman &
    Rousseeuw 1990) that beats the best k at or above the floor by ``margin``: obvious groups fewer than the
    floor are kept, while the weak 2-way split silhouette favours on real embeddings is not."""
    sign = -1.0 if criterion == "davies-bouldin" else 1.0

    def best(ks: list[int], crit: str, sgn: float) -> int | None:
        ks = [k for k in ks if scores[k].get(crit) is not None]
        return max(ks, key=lambda k: (sgn * scores[k][crit], -k)) if ks else None

    above = best([k for k in scores if k >= floor], criterion, sign)
    below = best([k for k in scores if k < floor], "silhouette", 1.0)
    if above is None:
        return below if below is not None else min(scores)
    if below is not None:
        sb, sa = scores[below]["silhouette"], scores[above].get("silhouette")
        if sb >= strong and (sa is None or sb >= sa + margin):
            return below
    return above


def kmeans(x: np.ndarray, k: int | None = None, seed: int = 0, k_range: tuple[int, int] | None = None,
           sample: int = 5000, niter: int = 25, nredo: int = 3, criterion: str | None = None,
           on_k=None) -> ClusterResult:
    """Spherical k-means of ``x`` (rows are L2-normalised first) on faiss.

    Without ``k``, every k from 2 to the ceiling of ``k_range`` (default :func:`default_k_range`) is
    clustered on a random sample of at most ``sample`` points and scored by silhouette, Calinski-Harabasz
    and Davies-Bouldin; :func:`choose_k` keeps one by ``criterion`` (default silhouette) above the floor,
    and all points are then clustered with it. ``nredo`` restarts keep the best objective. ``on_k(done,
    total)`` reports progress.
    """
    criterion = criterion or "silhouette"
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}; got {criterion!r}")
    x = _l2(x)
    n = len(x)
    if n == 0:
        raise ValueError("nothing to cluster: no vectors")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n, min(n, sample), replace=False))
    tried: dict[int, dict] = {}
    info: dict = {}
    if k is None:
        floor, ceiling = k_range or default_k_range(n)
        ks = list(range(2, min(ceiling, len(pick) - 1) + 1))
        xs = x[pick]
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
    labels, cents = _kmeans_once(x, k, seed, niter, nredo)
    s = silhouette(x[pick], labels[pick])
    distances = 1.0 - np.einsum("nd,nd->n", x, cents[labels])
    return ClusterResult(labels, cents, distances.astype(np.float32), int(k), s, x, info)


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
    (or 2x the k chosen on the raw vectors), so the close neighbourhoods stay local.
    """
    x = _l2(x)
    n, d = x.shape
    if n < 3:
        return kmeans(x, k, seed)
    rng = np.random.default_rng(seed)
    train = x[np.sort(rng.choice(n, min(n, max_train), replace=False))]
    nt = len(train)
    k_hint = k or kmeans(train, None, seed, k_range, criterion=criterion).k
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
    res = kmeans(z, k, seed, k_range, criterion=criterion, on_k=on_k)
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


def __getattr__(name: str):
    """``read_collection``, ``read_labels`` and ``cluster_collection`` live in :mod:`audioemb.cluster_report`."""
    if name in ("Collection", "read_collection", "read_labels", "cluster_collection"):
        from . import cluster_report

        return getattr(cluster_report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
