"""faiss for audioemb: index types, building (in memory or with on-disk lists), reading, searching, measuring
recall@10, and the k-means / neighbour searches of :mod:`audioemb.cluster`. No other module imports faiss.

Vectors are L2-normalised and compared by inner product, i.e. cosine similarity. faiss: Johnson, Douze &
Jégou, "Billion-scale similarity search with GPUs" (2019); HNSW: Malkov & Yashunin (2018); IVF-PQ: Jégou,
Douze & Schmid (2011). Every index maps faiss ids to rows of the index's ``vectors.npy``.

Types (``choose_type``; the user can force any of them):

- ``flat``  exact search, ``IndexIDMap2(IndexFlatIP)``; for fewer than ``FLAT_MAX`` (20k) vectors.
- ``hnsw``  graph search, ``IndexIDMap2(IndexHNSWFlat)`` (M=32); up to ``HNSW_MAX`` (1M) vectors.
- ``ivf``   inverted lists, ``IndexIVFFlat`` with nlist ≈ 4·sqrt(N) (at most ``MAX_NLIST``); from 1M vectors.
- ``ivfpq`` ``IndexIVFPQ`` whenever the raw float32 vectors (N·D·4 bytes) exceed the memory budget (default
  4 GiB), whatever N. Its inverted lists then live on disk (``OnDiskInvertedLists``, memory-mapped): the
  lists are built shard by shard (``SHARD`` vectors added to copies of the trained empty index, each written
  to disk) and merged into one ``.ivfdata`` file, so neither building nor searching holds the codes in
  memory. PQ codes lose precision, so each search takes ``rerank`` x k candidates from the index and
  re-scores them exactly with the stored vectors (re-ranking, Jégou, Tavenard, Douze & Amsaleg, "Searching
  in one billion vectors: re-rank with source coding", ICASSP 2011).

IVF centroids are trained on at most 64 points per list (faiss suggests 30 to 256; nprobe tuning recovers
the recall), with at least ``MIN_POINTS_PER_LIST`` (39): nlist shrinks for small collections (down to 1), so a
forced ``ivf`` never fails. Search parameters (nprobe, efSearch) are doubled until recall@10 against exact
search reaches the target (default 0.95) on up to 1000 queries sampled from the collection.
"""

from __future__ import annotations

import contextlib
import math
import os

import numpy as np

from ._vectors import release, take

TYPES = ("flat", "hnsw", "ivf", "ivfpq")
FLAT_MAX = 20_000
HNSW_MAX = 1_000_000
MIN_POINTS_PER_LIST = 39
MAX_POINTS_PER_LIST = 64
MAX_NLIST = 4096  # beyond this, training and assigning cost more than the finer lists save on 2-core machines
SHARD = 1_000_000
RERANK, MAX_RERANK = 8, 64  # ivfpq: candidates re-scored exactly per result, at first and at most


def on_disk(n: int, dim: int, memory_budget_gb: float) -> bool:
    """Whether ``n`` raw float32 vectors exceed the budget (then auto picks ivfpq, with its lists on disk)."""
    return n * dim * 4 > memory_budget_gb * 2**30


def choose_type(n: int, dim: int, memory_budget_gb: float = 4.0) -> str:
    """The automatic index type for ``n`` vectors of ``dim`` floats (thresholds in the module docstring)."""
    if on_disk(n, dim, memory_budget_gb):
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
    nlist = max(1, min(int(round(4 * math.sqrt(max(n, 1)))), n // MIN_POINTS_PER_LIST, MAX_NLIST))
    p = {"nlist": nlist, "nprobe": min(nlist, 8)}
    if kind == "ivfpq":
        m = max(d for d in range(1, max(1, min(64, dim // 6)) + 1) if dim % d == 0)  # >= 6 dims per code byte
        nbits = max(1, min(8, int(math.log2(max(2, n // MIN_POINTS_PER_LIST)))))
        p.update(m=m, nbits=nbits, rerank=RERANK)
    return p


# ------------------------------------------------------------------------------------------------- building
def make(vectors: np.ndarray, ids: np.ndarray, kind: str, params: dict, stored: np.ndarray, target: float = 0.95,
         seed: int = 0, ivfdata: str | None = None) -> tuple[object, dict, float]:
    """Build an index of ``kind`` over ``vectors`` (under ``ids``, rows of ``stored``) and tune its search
    parameters to ``target`` recall@10; returns (index, tuned params, measured recall@10). With ``ivfdata``
    the IVF lists are written to that file (see the module docstring)."""
    index = build(vectors, ids, kind, params, seed=seed, ivfdata=ivfdata)
    recall, params = tune(index, kind, params, stored, ids, target=target, seed=seed)
    return index, params, recall


def build(vectors: np.ndarray, ids: np.ndarray, kind: str, params: dict, seed: int = 0, chunk: int = 65536,
          ivfdata: str | None = None):
    """A trained faiss index of ``kind`` holding ``vectors`` under ``ids`` (int64). With ``ivfdata`` (IVF
    types only), its inverted lists are built shard by shard into that on-disk file."""
    index = trained(vectors, kind, params, seed)
    if ivfdata is None:
        add(index, vectors, ids, chunk)
    else:
        index = _merged(index, [(vectors, ids)], [], ivfdata, chunk)
    set_search_params(index, kind, params)
    return index


def trained(vectors: np.ndarray, kind: str, params: dict, seed: int = 0):
    """An empty faiss index of ``kind``; IVF types are trained on a sample of ``vectors`` (module docstring)."""
    import faiss

    d = vectors.shape[1]
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(d))
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(d, params["M"], ip)
        inner.hnsw.efConstruction = params["efConstruction"]
        return faiss.IndexIDMap2(inner)
    if kind not in ("ivf", "ivfpq"):
        raise ValueError(f"unknown index type {kind!r}")
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
    index.train(take(vectors, rows))  # scattered rows: read, not mapped (they would touch most pages)
    return index


def add_on_disk(old_path: str, vectors: np.ndarray, ids: np.ndarray, remove_ids: np.ndarray, ivfdata: str,
                kind: str, params: dict, chunk: int = 65536):
    """A new on-disk IVF index: the lists of the index at ``old_path`` (left untouched, readers may use it)
    plus ``vectors`` under ``ids``, less ``remove_ids``, written to ``ivfdata``."""
    import faiss

    with quiet():
        empty = faiss.read_index(old_path, faiss.IO_FLAG_SKIP_IVF_DATA)
        old = faiss.read_index(old_path, faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY)
    ivf = faiss.extract_index_ivf(empty)
    lists = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
    ivf.replace_invlists(lists, True)
    lists.this.disown()  # owned by the index now
    empty.ntotal = ivf.ntotal = 0
    index = _merged(empty, [(vectors, ids)], [faiss.extract_index_ivf(old).invlists], ivfdata, chunk)
    del old
    if len(remove_ids):
        index.remove_ids(np.ascontiguousarray(remove_ids, dtype=np.int64))
    set_search_params(index, kind, params)
    return index


def _merged(empty, parts: list, lists: list, ivfdata: str, chunk: int):
    """``empty`` (a trained IVF index) with on-disk lists in ``ivfdata``: the inverted ``lists`` given plus
    those of ``parts`` [(vectors, ids)], which are added ``SHARD`` rows at a time to shards on disk."""
    import faiss

    blob = faiss.serialize_index(empty)
    names, shards = [], []
    try:
        for vectors, ids in parts:
            for s in range(0, len(vectors), SHARD):
                shard = faiss.deserialize_index(blob)
                add(shard, vectors[s:s + SHARD], ids[s:s + SHARD], chunk)
                names.append(f"{ivfdata}.shard{len(names)}")
                faiss.write_index(shard, names[-1])
                del shard
        shards = [faiss.read_index(p, faiss.IO_FLAG_MMAP) for p in names]  # mapped, not loaded
        ptrs = faiss.InvertedListsPtrVector()
        for il in [*lists, *(faiss.extract_index_ivf(s).invlists for s in shards)]:
            ptrs.push_back(il)
        ivf = faiss.extract_index_ivf(empty)
        out = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, ivfdata)
        with quiet():
            n = out.merge_from_multiple(ptrs.data(), ptrs.size(), False)
        empty.ntotal = ivf.ntotal = n
        ivf.replace_invlists(out, True)
        out.this.disown()  # owned by the index now
    finally:
        del shards  # unmaps the shards before their files go
        for p in names:
            with contextlib.suppress(OSError):
                os.remove(p)
    return empty


def add(index, vectors: np.ndarray, ids: np.ndarray, chunk: int = 65536) -> None:
    """Add rows of ``vectors`` under ``ids``, in chunks (``vectors`` may be a memory map)."""
    for s in range(0, len(vectors), chunk):
        index.add_with_ids(np.ascontiguousarray(vectors[s:s + chunk], dtype=np.float32),
                           np.ascontiguousarray(ids[s:s + chunk], dtype=np.int64))
        release(vectors)


def updated(index, vectors: np.ndarray, ids: np.ndarray, remove_ids: np.ndarray):
    """A copy of an in-memory ``index`` with ``remove_ids`` removed and ``vectors`` added under ``ids``."""
    import faiss

    index = faiss.clone_index(index)
    if len(remove_ids):
        index.remove_ids(np.ascontiguousarray(remove_ids, dtype=np.int64))
    add(index, vectors, ids)
    return index


def write(index, path: str) -> None:
    """Write ``index`` to ``path`` (an on-disk index records its .ivfdata file's name)."""
    import faiss

    faiss.write_index(index, path)


def read(path: str, ondisk: bool = False):
    """Read an index written by :func:`write` (``ondisk``: its lists are memory-mapped from the .ivfdata
    file beside it, wherever the folder has moved)."""
    import faiss

    if not ondisk:
        return faiss.read_index(path)
    with quiet():
        return faiss.read_index(path, faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY)


def set_threads(n: int) -> None:
    """Threads of faiss's OpenMP loops."""
    import faiss

    faiss.omp_set_num_threads(n)


@contextlib.contextmanager
def quiet():
    """Silence what faiss's C++ code prints on stdout (file resizing, on-disk paths) while inside."""
    import sys

    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


# -------------------------------------------------------------------------------------------------- search
def set_search_params(index, kind: str, params: dict) -> None:
    """Apply nprobe (IVF) or efSearch (HNSW) from ``params``."""
    import faiss

    if kind == "hnsw":
        faiss.downcast_index(index.index).hnsw.efSearch = int(params["efSearch"])
    elif kind in ("ivf", "ivfpq"):
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])


def search(index, queries: np.ndarray, k: int, stored: np.ndarray | None = None,
           rerank: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the ``k`` best matches of each query, best first (missing ones: id -1). With
    ``rerank`` > 1, ``rerank`` x k candidates are re-scored exactly against ``stored`` (rows = ids)."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if rerank <= 1 or stored is None:
        return index.search(q, k)
    _, cand = index.search(q, k * rerank)
    ok = cand >= 0
    rows = np.where(ok, cand, 0)
    scores = np.where(ok, np.einsum("qd,qkd->qk", q, take(stored, rows.ravel()).reshape(*rows.shape, -1)), -np.inf)
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    s, ids = np.take_along_axis(scores, best, 1), np.take_along_axis(cand, best, 1)
    return s.astype(np.float32), np.where(np.isfinite(s), ids, -1)


def exact_kth(queries: np.ndarray, vectors: np.ndarray, rows: np.ndarray, k: int, chunk: int = 65536) -> np.ndarray:
    """The k-th largest inner product of each query over ``vectors[rows]`` (exact, in chunks of rows)."""
    import faiss

    q = np.ascontiguousarray(queries, dtype=np.float32)
    best = np.full((len(q), 0), -np.inf, np.float32)
    for s in range(0, len(rows), chunk):
        block = np.ascontiguousarray(vectors[rows[s:s + chunk]], dtype=np.float32)
        release(vectors)
        sims, _ = faiss.knn(q, block, min(k, len(block)), metric=faiss.METRIC_INNER_PRODUCT)
        both = np.concatenate([best, sims], axis=1)
        kk = min(k, both.shape[1])
        best = -np.partition(-both, kk - 1, axis=1)[:, :kk]
    return best.min(axis=1)


def recall_at_k(index, vectors: np.ndarray, live: np.ndarray, k: int = 10, n_queries: int = 1000,
                seed: int = 0, rerank: int = 0, _kth: tuple | None = None) -> float:
    """Recall@k of ``index`` (re-ranked as :func:`search` does) against exact search over ``vectors[live]``
    (live = faiss ids = rows), on up to ``n_queries`` vectors of the collection. A returned id counts when
    its true similarity reaches the exact k-th one (so ties between duplicates are no misses)."""
    if len(live) == 0:
        return 1.0
    q, kth = _kth or _queries_and_kth(vectors, live, k, n_queries, seed)
    kk = min(k, len(live))
    _, found = search(index, q, kk, vectors, rerank)
    ok = found >= 0
    rows = np.where(ok, found, 0)
    true = np.einsum("qd,qkd->qk", q, take(vectors, rows.ravel()).reshape(*rows.shape, -1))
    hits = ok & (true >= kth[:, None] - 1e-5)
    return float(hits.sum() / (len(q) * kk))


def _queries_and_kth(vectors, live, k, n_queries, seed):
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(live), min(n_queries, len(live)), replace=False))
    q = take(vectors, live[pick])
    return q, exact_kth(q, vectors, np.sort(live), min(k, len(live)))


def tune(index, kind: str, params: dict, vectors: np.ndarray, live: np.ndarray, target: float = 0.95,
         k: int = 10, n_queries: int | None = None, seed: int = 0) -> tuple[float, dict]:
    """Smallest nprobe / efSearch (doubling) reaching recall@k >= ``target`` on ``n_queries`` (default 1000,
    300 beyond ``HNSW_MAX`` vectors, where each exact pass reads them all); returns (recall, params). For
    ivfpq, once more lists stop helping (PQ codes limit the order of the candidates), the re-ranked
    candidates are doubled instead, up to ``MAX_RERANK`` per result."""
    params = dict(params)
    n_queries = n_queries or (1000 if len(live) <= HNSW_MAX else 300)
    cache = _queries_and_kth(vectors, live, k, n_queries, seed) if len(live) else None
    if kind == "hnsw":
        name, values = "efSearch", [16, 32, 64, 128, 256, 512, 1024]
    elif kind in ("ivf", "ivfpq"):
        name, nlist = "nprobe", params["nlist"]
        values = sorted({min(2**i, nlist) for i in range(int(math.log2(nlist)) + 2)})
    else:
        return recall_at_k(index, vectors, live, k, _kth=cache), params
    i, prev = 0, -1.0
    while True:
        params[name] = values[i]
        set_search_params(index, kind, params)
        recall = recall_at_k(index, vectors, live, k, rerank=int(params.get("rerank", 0)), _kth=cache)
        if recall >= target:
            break
        if kind == "ivfpq" and recall - prev < 0.005 and params["rerank"] < MAX_RERANK:
            params["rerank"] *= 2  # saturated: same lists, more candidates re-scored exactly
        elif i == len(values) - 1:
            break
        else:
            i += 1
        prev = recall
    return recall, params


# ------------------------------------------------------------------------------------------------ clustering
def kmeans(x: np.ndarray, k: int, niter: int = 25, nredo: int = 1, seed: int = 0,
           spherical: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,), centroids (k, D)) of faiss k-means (Lloyd) on float32 ``x``; ``spherical`` keeps the
    centroids L2-normalised (cosine k-means on unit vectors)."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=niter, nredo=nredo, seed=seed, spherical=spherical, verbose=False,
                      min_points_per_centroid=1)
    km.train(x)
    _, labels = km.index.search(x, 1)
    return labels[:, 0].astype(np.int64), km.centroids


def neighbours(x: np.ndarray, k: int, seed: int = 0, exact_below: int = 4000, candidates: int = 4) -> np.ndarray:
    """Ids (N, k) of each row's ``k`` nearest rows of ``x`` by inner product (itself included, -1 where
    missing): exact below ``exact_below`` rows, else IVF with enough lists probed to see about
    ``candidates`` x k vectors (approximate)."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if n <= exact_below:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed, index.cp.min_points_per_centroid = seed, 1
        index.train(x)
        index.nprobe = min(nlist, int(np.ceil(candidates * k * nlist / n)))
    index.add(x)
    return index.search(x, k)[1]
