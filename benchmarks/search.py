"""Search and clustering at scale: the library's own index and k-means on 10k / 100k / 1M vectors.

    python benchmarks/search.py [--sizes 10000 100000 1000000] [--dim 512]

Vectors are synthetic but clustered like real embeddings (a mixture of 2,000 Gaussian clusters on the
sphere). For each size: the index type that ``audioemb`` picks automatically, build time, recall@10 against
exact search after the automatic tuning, and queries per second (1,000 queries, 2 threads), beside exact
(flat) search; then faiss k-means (k = 256) time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import table


def clustered(n: int, dim: int, seed: int = 0, centres: int = 2000, out: np.ndarray | None = None) -> np.ndarray:
    """``n`` unit vectors around ``centres`` random directions, written 100k at a time into ``out`` (a new
    array, or e.g. a memory-mapped .npy for more vectors than memory)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float32) if out is None else out
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        x = c[rng.integers(0, centres, m)] + 0.08 * rng.standard_normal((m, dim)).astype(np.float32)
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def qps(index, q: np.ndarray, k: int = 10) -> float:
    t = time.perf_counter()
    index.search(q, k)
    return len(q) / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> str:
    from audioemb import _faiss
    from audioemb.cluster import kmeans

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=512)
    args = ap.parse_args(argv)
    _faiss.set_threads(2)
    rows, krows = [], []
    for n in args.sizes:
        x = clustered(n, args.dim)
        ids = np.arange(n, dtype=np.int64)
        kind = _faiss.choose_type(n, args.dim)
        params = _faiss.default_params(kind, n, args.dim)
        t = time.perf_counter()
        index = _faiss.build(x, ids, kind, params)
        recall, params = _faiss.tune(index, kind, params, x, ids)
        t_build = time.perf_counter() - t
        q = x[np.random.default_rng(1).choice(n, 1000, replace=False)]
        flat = _faiss.build(x, ids, "flat", {})
        knob = {k: v for k, v in params.items() if k in ("nprobe", "efSearch", "nlist", "M")}
        rows.append([f"{n:,}", kind, knob, f"{t_build:.1f}", f"{recall:.3f}", f"{qps(index, q):,.0f}",
                     f"{qps(flat, q):,.0f}"])
        del flat, index
        if n >= 100_000:
            t = time.perf_counter()
            kmeans(x, k=256)
            krows.append([f"{n:,}", "256", f"{time.perf_counter() - t:.1f}"])
    text = table(["vectors", "index (auto)", "parameters", "build + tune (s)", "recall@10", "queries/s",
                  "exact queries/s"], rows)
    text += "\n\n" + table(["vectors", "k", "k-means time (s)"], krows)
    print(text)
    return text


if __name__ == "__main__":
    main()
