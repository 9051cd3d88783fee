"""An index larger than its memory budget: N synthetic vectors built and searched with bounded peak RSS.

    python benchmarks/index_large.py [--vectors 10000000] [--memory-gb 2] [--dir WORK]

The vectors (192-d, the default model's dimension; clustered like ``search.py``'s: 2,000 directions plus
noise, L2-normalised) are generated block by block (100k rows, each block from its own seed) as the build
reads them, so the only copy on disk is the index's own ``vectors.npy``; 1,000 segments per synthetic file.
``Index.from_vectors`` builds the index in a fresh process with ``memory_budget_gb``: above the budget auto
picks IVF-PQ with its inverted lists on disk, built shard by shard, and tunes nprobe to recall@10 >= 0.95
(re-ranking candidates with the stored vectors). A second process opens the index and answers 1,000
queries (stored vectors plus noise, one at a time through ``Index.search_vector``). Each process reports
its peak RSS (VmHWM: resident pages, including those of memory-mapped files). Recall@10 of those queries
is measured against exact search over all N stored vectors (a chunked scan of the index's ``vectors.npy``,
timed as "exact queries/s"). Needs about N x 0.85 KB of free disk (N x 768 bytes of vectors, the lists,
the metadata).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import table, work_folder

PER_FILE = 1000

BUILD = """
import json, re, sys, time
import numpy as np
from audioemb.index import Index
from audioemb.runtime import load
from index_large import Synthetic
n, out, budget, per_file = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
m = load(None)
v = Synthetic(n, m.embedding_dim)
files = [{"path": f"f{i:07d}.flac", "size": 0, "mtime_ns": 0, "duration_s": per_file * 5.0}
         for i in range((n + per_file - 1) // per_file)]
seg = np.arange(n)
t = time.perf_counter()
idx = Index.from_vectors(out, v, files, seg // per_file, (seg % per_file) * 5.0, (seg % per_file) * 5.0 + 5.0,
                         model=m, root=".", memory_budget_gb=budget)
dt = time.perf_counter() - t
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024
print(json.dumps({"seconds": dt, "peak_mb": hwm, "info": idx.info, "disk": idx.disk_size(), "gen_s": v.seconds}))
"""

SEARCH = """
import json, re, sys, time
import numpy as np
from audioemb import _faiss
from audioemb._vectors import take
from audioemb.index import Index
out, nq = sys.argv[1], int(sys.argv[2])
t = time.perf_counter()
idx = Index.load(out)
open_s = time.perf_counter() - t
v = np.load(idx._vectors.filename, mmap_mode="r")  # the stored (generated, normalised) vectors
rng = np.random.default_rng(1)
q = take(v, np.sort(rng.choice(len(v), nq, replace=False)))
q += rng.standard_normal(q.shape).astype(np.float32) * 0.01
q /= np.linalg.norm(q, axis=1, keepdims=True)
idx.search_vector(q[0], k=10, collapse=False)
t = time.perf_counter()
found = [[h.row for h in idx.search_vector(x, k=10, collapse=False)] for x in q]
qps = nq / (time.perf_counter() - t)
hwm_search = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024
del idx
t = time.perf_counter()
kth = _faiss.exact_kth(q, v, np.arange(len(v)), 10)
exact_s = time.perf_counter() - t
rows = np.array(found)
true = np.einsum("qd,qkd->qk", q, take(v, rows.ravel()).reshape(*rows.shape, -1))
print(json.dumps({"qps": qps, "recall": float((true >= kth[:, None] - 1e-5).mean()), "exact_qps": nq / exact_s,
                  "peak_mb": hwm_search, "open_s": open_s}))
"""


class Synthetic:
    """N clustered unit vectors (2,000 random directions plus noise, as ``search.clustered``) generated on
    demand, 100k-row block ``b`` from seed ``(seed, b)``: slices and scattered rows read the same values
    every time, and nothing is stored. ``seconds`` totals the time spent generating."""

    BLOCK = 100_000

    def __init__(self, n: int, dim: int, seed: int = 0, centres: int = 2000):
        self.shape, self.seed, self.seconds, self._cache = (n, dim), seed, 0.0, (None, None)
        c = np.random.default_rng(seed).standard_normal((centres, dim)).astype(np.float32)
        self.centres = c / np.linalg.norm(c, axis=1, keepdims=True)

    def __len__(self) -> int:
        return self.shape[0]

    def block(self, b: int) -> np.ndarray:
        if self._cache[0] != b:
            t = time.perf_counter()
            rng = np.random.default_rng((self.seed, b))
            m = min(self.BLOCK, self.shape[0] - b * self.BLOCK)
            x = self.centres[rng.integers(0, len(self.centres), m)]
            x += 0.08 * rng.standard_normal((m, self.shape[1]), dtype=np.float32)
            self._cache = (b, x / np.linalg.norm(x, axis=1, keepdims=True))
            self.seconds += time.perf_counter() - t
        return self._cache[1]

    def __getitem__(self, key) -> np.ndarray:
        rows = np.arange(*key.indices(len(self))) if isinstance(key, slice) else np.asarray(key, np.int64)
        out = np.empty((len(rows), self.shape[1]), np.float32)
        blocks = rows // self.BLOCK
        order = np.argsort(blocks, kind="stable")
        bounds = np.flatnonzero(np.diff(blocks[order])) + 1
        for group in np.split(order, bounds) if len(rows) else []:
            out[group] = self.block(int(blocks[group[0]]))[rows[group] % self.BLOCK]
        return out


def run(code: str, *args, src: Path | None = None) -> dict:
    """Run ``code`` in a fresh Python with ``args``; its last stdout line is JSON. ``src``: a checkout whose
    audioemb is imported instead of the installed one."""
    paths = [str(src)] if src else []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*paths, str(Path(__file__).resolve().parent),
                                                        os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env,
                       cwd=src)
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vectors", type=int, default=10_000_000)
    ap.add_argument("--memory-gb", type=float, default=2.0)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--dir", default=None, help="Work folder (default: a temporary one, deleted at the end).")
    args = ap.parse_args(argv)
    dim = 192  # the default model's dimension, which the index records
    with work_folder(args.dir, "audioemb-bigindex-") as tmp:
        shutil.rmtree(tmp / "idx", ignore_errors=True)
        b = run(BUILD, args.vectors, tmp / "idx", args.memory_gb, PER_FILE)
        s = run(SEARCH, tmp / "idx", args.queries)
        i = b["info"]
        knob = {k: v for k, v in i["build_params"].items() if k in ("nlist", "nprobe", "m", "nbits", "rerank")}
        rows = [[f"{args.vectors:,}", f"{args.vectors * dim * 4 / 2**30:.1f}", f"{args.memory_gb:g}",
                 i["index_type"] + (", lists on disk" if i.get("on_disk") else ""), json.dumps(knob),
                 f"{b['seconds']:.0f}", f"{b['peak_mb'] / 1024:.2f}", f"{b['disk'] / 2**30:.1f}",
                 f"{s['open_s']:.1f}", f"{s['peak_mb'] / 1024:.2f}", f"{i['recall@10']:.3f}", f"{s['recall']:.3f}",
                 f"{s['qps']:.0f}", f"{s['exact_qps']:.1f}"]]
        text = table(["vectors (192-d)", "raw vectors (GiB)", "budget (GiB)", "index (auto)", "parameters",
                      "build + tune (s)", "build peak RSS (GiB)", "index on disk (GiB)", "open (s)",
                      "search peak RSS (GiB)", "recall@10 at build", "recall@10 (noisy queries)",
                      "queries/s (1 at a time)", "exact queries/s"], rows)
        print(text)
        print(f"\n(build + tune includes {b['gen_s']:.0f} s of generating the vectors)")
        return text


if __name__ == "__main__":
    main()
