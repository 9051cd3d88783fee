"""Scores of a clustering: internal criteria for choosing k, and agreement with reference labels.

- :func:`silhouette`, :func:`calinski_harabasz`, :func:`davies_bouldin`: internal criteria;
  :func:`choose_k` picks k from them above the floor of :func:`default_k_range`.
- :func:`cluster_scores`: NMI, ARI and purity against reference labels.
"""

from __future__ import annotations

import numpy as np


def silhouette(x: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean silhouette (Rousseeuw, 1987) with cosine distance of unit vectors ``x``; None if undefined.

    Same value as ``sklearn.metrics.silhouette_score(x, labels, metric="cosine")``, but computed from
    per-cluster sums in O(N·k·D) instead of the O(N²) distance matrix. A point whose distances to its own
    and the nearest other cluster are both zero (duplicates split between clusters) scores 0, as in sklearn.
    """
    _, lab = np.unique(labels, return_inverse=True)
    n, k = len(lab), lab.max() + 1 if len(lab) else 0
    if not 2 <= k <= n - 1:
        return None
    x = np.asarray(x, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)  # exactly unit: the self term is 0
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, lab, x)
    counts = np.bincount(lab, minlength=k).astype(np.float64)
    # (N, k): sum over each cluster of 1 - x_i·x_j; each term is >= 0, so rounding below 0 is clipped
    dist_sum = np.maximum(counts[None, :] - x @ sums.T, 0.0)
    own = counts[lab]
    a = dist_sum[np.arange(n), lab] / np.maximum(own - 1, 1)
    other = dist_sum / counts[None, :]
    other[np.arange(n), lab] = np.inf
    b = other.min(axis=1)
    scale = np.maximum(a, b)
    defined = (own > 1) & (scale > _ZERO_DISTANCE)
    s = np.where(defined, (b - a) / np.where(defined, scale, 1.0), 0.0)
    return float(s.mean())


_ZERO_DISTANCE = 1e-9  # mean cosine distances below this are rounding: the points coincide


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
