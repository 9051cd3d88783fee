"""Downstream metrics on frozen embeddings: grouped linear probe, kNN precision@k, retrieval mAP.

When groups are given (speaker, phrase, instrument program, ...), the probe's folds never split a group,
and neighbours from the query's own group are excluded from kNN and mAP, so scores measure
generalisation to unseen groups.
"""

from __future__ import annotations

import warnings

import numpy as np


def _folds(y: np.ndarray, groups: np.ndarray | None, n_folds: int, seed: int):
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise ValueError("a grouped probe needs at least 2 groups")
        return GroupKFold(n_splits=min(n_folds, n_groups)).split(np.zeros(len(y)), y, groups)
    counts = np.unique(y, return_counts=True)[1]
    k = max(2, min(n_folds, int(counts.min())))
    return StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)


def linear_probe(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, n_folds: int = 5,
                 seed: int = 0, c: float = 1.0) -> tuple[float, float]:
    """Mean and std of accuracy of a logistic-regression probe (standardised inputs) over CV folds."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    accs = []
    for tr, te in _folds(y, groups, n_folds, seed):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x[tr], y[tr])
        accs.append(float((clf.predict(x[te]) == y[te]).mean()))
    return float(np.mean(accs)), float(np.std(accs))


def _similarity(x: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    s = xn @ xn.T
    np.fill_diagonal(s, -np.inf)
    if groups is not None:
        s[groups[:, None] == groups[None, :]] = -np.inf
    return s


def knn_precision(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, k: int = 10) -> float:
    """Mean fraction of each item's k nearest neighbours (cosine) that share its label."""
    s = _similarity(x, groups)
    precs = []
    for i in range(len(x)):
        valid = np.isfinite(s[i])
        n = min(k, int(valid.sum()))
        if n == 0:
            continue
        top = np.argpartition(-s[i], n - 1)[:n]
        precs.append(float((y[top] == y[i]).mean()))
    return float(np.mean(precs))


def retrieval_map(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> float:
    """Mean average precision of ranking all other items by cosine similarity, same label = relevant."""
    s = _similarity(x, groups)
    aps = []
    for i in range(len(x)):
        valid = np.isfinite(s[i])
        order = np.argsort(-s[i][valid], kind="stable")
        rel = (y[valid] == y[i])[order]
        if not rel.any():
            continue
        hits = np.cumsum(rel)
        aps.append(float((hits[rel] / (np.flatnonzero(rel) + 1)).mean()))
    return float(np.mean(aps))
