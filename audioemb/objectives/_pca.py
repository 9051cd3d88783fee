"""DeepCluster's preprocessing before k-means (the k-means itself: :func:`audioemb._faiss.kmeans`, shared with
``audioemb cluster``)."""

from __future__ import annotations

import numpy as np


def pca_whiten(x: np.ndarray, dim: int) -> np.ndarray:
    """Project on the top ``dim`` principal components, whiten, L2-normalise (DeepCluster's preprocessing)."""
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    d = min(dim, vt.shape[0])
    y = x @ vt[:d].T / (s[:d] / np.sqrt(len(x)) + 1e-5)
    return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)
