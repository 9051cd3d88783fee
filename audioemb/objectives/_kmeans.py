"""k-means on faiss for the clustering objectives (DeepCluster, Local Aggregation)."""

from __future__ import annotations

import numpy as np


def pca_whiten(x: np.ndarray, dim: int) -> np.ndarray:
    """Project on the top ``dim`` principal components, whiten, L2-normalise (DeepCluster's preprocessing)."""
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    d = min(dim, vt.shape[0])
    y = x @ vt[:d].T / (s[:d] / np.sqrt(len(x)) + 1e-5)
    return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,), centroids (k, D)) of faiss k-means on float32 ``x``."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=iterations, seed=seed, verbose=False, min_points_per_centroid=1)
    km.train(x)
    _, labels = km.index.search(x, 1)
    return labels[:, 0].astype(np.int64), km.centroids
