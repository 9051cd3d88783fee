"""Downstream metrics on frozen embeddings: grouped linear probe, few-shot probe, kNN precision@k, mAP.

When groups are given (speaker, phrase, instrument program, ...), the probe's folds never split a group,
the few-shot probe's examples and queries come from different groups, and neighbours from the query's
own group are excluded from kNN and mAP, so scores measure generalisation to unseen groups.
"""

from __future__ import annotations

import warnings
from collections import Counter

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


def few_shot_split(y: np.ndarray, groups: np.ndarray | None, shots: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(support, query) indices: up to ``shots`` labelled examples per class, every other usable item a query.

    Without groups, each class keeps at least one item as a query. With groups, no group is on both
    sides: for each class (in random order) one of its groups is first kept for queries, then its
    examples are drawn one per group where possible, preferring groups that already hold examples of
    other classes (so that as many groups as possible stay free for queries). Items of groups that hold
    no example are queries.
    """
    classes = rng.permutation(np.unique(y))
    if groups is None:
        support = []
        for c in classes:
            idx = rng.permutation(np.flatnonzero(y == c))
            support.extend(idx[:min(shots, len(idx) - 1)])
        support = np.sort(np.asarray(support, dtype=int))
        rest = np.setdiff1d(np.arange(len(y)), support)
        return support, rest[np.isin(y[rest], y[support])]
    side: dict = {}  # group -> "support" | "query"
    support = []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        if not any(side.get(g) == "query" for g in groups[idx]):
            free = [g for g in groups[idx] if g not in side]
            if not free:
                continue  # every group of this class already holds examples: it cannot be tested
            side[free[0]] = "query"
        cand = [i for i in idx if side.get(groups[i]) != "query"]
        rank, count = {}, Counter()
        for i in cand:  # 0 for the first item of each group, 1 for the second, ...
            rank[i] = count[groups[i]]
            count[groups[i]] += 1
        cand.sort(key=lambda i: (rank[i], side.get(groups[i]) != "support"))  # stable: random order otherwise
        for i in cand[:shots]:
            side[groups[i]] = "support"
            support.append(i)
    support = np.sort(np.asarray(support, dtype=int))
    taught = np.isin(y, y[support])
    query = np.flatnonzero(np.array([side.get(g) != "support" for g in groups]) & taught)
    return support, query


def prototype_accuracy(x: np.ndarray, y: np.ndarray, support: np.ndarray, query: np.ndarray) -> float:
    """Accuracy of the nearest class centroid on cosine similarity, after centring on the support mean and
    L2-normalising (SimpleShot's CL2N; Wang et al., 2019, "SimpleShot: Revisiting Nearest-Neighbor
    Classification for Few-Shot Learning")."""
    z = x - x[support].mean(axis=0)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    classes = np.unique(y[support])
    protos = np.stack([z[support][y[support] == c].mean(axis=0) for c in classes])
    protos = protos / np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)
    pred = classes[np.argmax(z[query] @ protos.T, axis=1)]
    return float((pred == y[query]).mean())


def few_shot_probe(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, shots: int = 5,
                   draws: int = 20, seed: int = 0) -> tuple[float, float]:
    """Mean and std over ``draws`` random draws of the accuracy of a prototype classifier taught with
    ``shots`` examples per class (:func:`few_shot_split`, :func:`prototype_accuracy`).

    With a few labels the probe cannot re-weight thousands of random features, so it tells learned
    geometry from random projections better than a probe trained on every labelled clip.
    """
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(draws):
        support, query = few_shot_split(y, groups, shots, rng)
        if len(support) and len(query):
            accs.append(prototype_accuracy(x, y, support, query))
    if not accs:
        raise ValueError("no few-shot split possible: every class needs items in at least two groups")
    return float(np.mean(accs)), float(np.std(accs))
