"""faiss indexes for :mod:`audioemb.index`: choosing a type, building it, and measuring/tuning recall@10.

Vectors are L2-normalised and compared by inner product, i.e. cosine similarity. faiss: Johnson, Douze &
Jégou, "Billion-scale similarity search with GPUs" (2019); HNSW: Malkov & Yashunin (2018); IVF-PQ: Jégou,
Douze & Schmid (2011). Every index maps faiss ids to rows of the index's ``vectors.npy``.

Types (``choose_type``; the user can force any of them):

- ``flat``  exact search, ``IndexIDMap2(IndexFlatIP)``; for fewer than ``FLAT_MAX`` (20k) vectors.
- ``hnsw``  graph search, ``IndexIDMap2(IndexHNSWFlat)`` (M=32); up to ``HNSW_MAX`` (1M) vectors.
- ``ivf``   inverted lists, ``IndexIVFFlat`` with nlist ≈ 4·sqrt(N); from 1M vectors.
- ``ivfpq`` ``IndexIVFPQ`` (about 32x smaller) whenever the raw float32 vectors (N·D·4 bytes) exceed the
  memory budget (default 4 GiB), whatever N.

IVF centroids are trained on a sample of at most 64 points per list (faiss suggests 30 to 256; 64 keeps a
1M-vector build to minutes on 2 cores, and nprobe tuning recovers the recall), with at least ``MIN_POINTS_PER_LIST``
(39) points per list: nlist is reduced for small collections (down to 1), so a forced ``ivf`` never fails.
Search-time parameters (nprobe, efSearch) are doubled until recall@10 against exact search reaches the
target (default 0.95) on up to 1000 queries sampled from the collection.
"""

from __future__ import annotations

import math

import numpy as np

TYPES = ("flat", "hnsw", "ivf", "ivfpq")
FLAT_MAX = 20_000
HNSW_MAX = 1_000_000
MIN_POINTS_PER_LIST = 39
MAX_POINTS_PER_LIST = 64


def choose_type(n: int, dim: int, memory_budget_gb: float = 4.0) -> str:
    """The automatic index type for ``n`` vectors of ``dim`` floats (thresholds in the module docstring)."""
    if n * dim * 4 > memory_budget_gb * 2**30:
        return "ivfpq"
    if n < FLAT_MAX:
        return "flat"
    return "hnsw" if n < HNSW_MAX else "ivf"


def default_params(kind: str, n: int, dim: int) -> dict:
    """Build and search parameters for an index of ``kind`` over ``n`` vectors."""
    if kind not in TYPES:
        raise ValueError(f"index type must be one of {', '.join(TYPES)} or auto, got {kind!r}")
    if kind == "hnsw":
        return {"M": 32, "efConstruction": 80, "efSearch": 64}
    if kind == "flat":
        return {}
    nlist = max(1, min(int(round(4 * math.sqrt(max(n, 1)))), n // MIN_POINTS_PER_LIST))
    p = {"nlist": nlist, "nprobe": min(nlist, 8)}
    if kind == "ivfpq":
        m = max(d for d in range(1, max(1, min(64, dim // 2)) + 1) if dim % d == 0)
        nbits = max(1, min(8, int(math.log2(max(2, n // MIN_POINTS_PER_LIST)))))
        p.update(m=m, nbits=nbits)
    return p


def build(vectors: np.ndarray, ids: np.ndarray, kind: str, params: dict, seed: int = 0, chunk: int = 65536):
    """A trained faiss index of ``kind`` holding ``vectors`` under ``ids`` (int64)."""
    import faiss

    d = vectors.shape[1]
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(d, params["M"], ip)
        inner.hnsw.efConstruction = params["efConstruction"]
        index = faiss.IndexIDMap2(inner)
    elif kind in ("ivf", "ivfpq"):
        quantizer = faiss.IndexFlatIP(d)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, d, params["nlist"], ip)
        else:
            index = faiss.IndexIVFPQ(quantizer, d, params["nlist"], params["m"], params["nbits"], ip)
            index.pq.cp.min_points_per_centroid = 1
        index.cp.min_points_per_centroid = 1
        index.cp.seed = seed
        n_train = min(len(vectors), params["nlist"] * MAX_POINTS_PER_LIST)
        rows = np.sort(np.random.default_rng(seed).choice(len(vectors), n_train, replace=False))
        index.train(np.ascontiguousarray(vectors[rows], dtype=np.float32))
    else:
        raise ValueError(f"unknown index type {kind!r}")
    add(index, vectors, ids, chunk)
    set_search_params(index, kind, params)
    return index


def add(index, vectors: np.ndarray, ids: np.ndarray, chunk: int = 65536) -> None:
    """Add rows of ``vectors`` under ``ids``, in chunks (``vectors`` may be a memory map)."""
    for s in range(0, len(vectors), chunk):
        index.add_with_ids(np.ascontiguousarray(vectors[s:s + chunk], dtype=np.float32),
                           np.ascontiguousarray(ids[s:s + chunk], dtype=np.int64))


def set_search_params(index, kind: str, params: dict) -> None:
    """Apply nprobe (IVF) or efSearch (HNSW) from ``params``."""
    import faiss

    if kind == "hnsw":
        faiss.downcast_index(index.index).hnsw.efSearch = int(params["efSearch"])
    elif kind in ("ivf", "ivfpq"):
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])


def exact_kth(queries: np.ndarray, vectors: np.ndarray, rows: np.ndarray, k: int, chunk: int = 65536) -> np.ndarray:
    """The k-th largest inner product of each query over ``vectors[rows]`` (exact, in chunks of rows)."""
    best = np.full((len(queries), 0), -np.inf, np.float32)
    for s in range(0, len(rows), chunk):
        sims = queries @ np.asarray(vectors[rows[s:s + chunk]], dtype=np.float32).T
        both = np.concatenate([best, sims], axis=1)
        kk = min(k, both.shape[1])
        best = -np.partition(-both, kk - 1, axis=1)[:, :kk]
    return best.min(axis=1)


def recall_at_k(index, vectors: np.ndarray, live: np.ndarray, k: int = 10, n_queries: int = 1000,
                seed: int = 0, _kth: tuple | None = None) -> float:
    """Recall@k of ``index`` against exact search over ``vectors[live]`` (live = faiss ids = rows).

    Queries are up to ``n_queries`` vectors sampled from the collection. A returned id counts as correct
    when its true similarity reaches the exact k-th similarity (so ties between duplicates don't count as
    misses).
    """
    if len(live) == 0:
        return 1.0
    q, kth = _kth or _queries_and_kth(vectors, live, k, n_queries, seed)
    kk = min(k, len(live))
    _, found = index.search(q, kk)
    ok = found >= 0
    rows = np.where(ok, found, 0)
    true = np.einsum("qd,qkd->qk", q, np.asarray(vectors[rows.ravel()], np.float32).reshape(*rows.shape, -1))
    hits = ok & (true >= kth[:, None] - 1e-5)
    return float(hits.sum() / (len(q) * kk))


def _queries_and_kth(vectors, live, k, n_queries, seed):
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(live), min(n_queries, len(live)), replace=False))
    q = np.ascontiguousarray(vectors[live[pick]], dtype=np.float32)
    return q, exact_kth(q, vectors, np.sort(live), min(k, len(live)))


def tune(index, kind: str, params: dict, vectors: np.ndarray, live: np.ndarray, target: float = 0.95,
         k: int = 10, n_queries: int = 1000, seed: int = 0) -> tuple[float, dict]:
    """Smallest nprobe / efSearch (doubling) reaching recall@k >= ``target``; returns (recall, params)."""
    params = dict(params)
    cache = _queries_and_kth(vectors, live, k, n_queries, seed) if len(live) else None
    if kind == "hnsw":
        name, values = "efSearch", [16, 32, 64, 128, 256, 512, 1024]
    elif kind in ("ivf", "ivfpq"):
        name, nlist = "nprobe", params["nlist"]
        values = sorted({min(2**i, nlist) for i in range(int(math.log2(nlist)) + 2)})
    else:
        return recall_at_k(index, vectors, live, k, _kth=cache), params
    recall = 0.0
    for v in values:
        params[name] = v
        set_search_params(index, kind, params)
        recall = recall_at_k(index, vectors, live, k, _kth=cache)
        if recall >= target:
            break
    return recall, params
