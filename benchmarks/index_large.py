"""An index larger than its memory budget: N synthetic vectors built and searched with bounded peak RSS.

    python benchmarks/index_large.py [--vectors 10000000] [--memory-gb 2] [--dir WORK]

The vectors (192-d, the default model's dimension; clustered like ``search.py``'s: 2,000 directions plus
noise, L2-normalised) are written to a .npy file 100k at a time; 1,000 segments per synthetic file.
``Index.from_vectors`` builds the index in a fresh process with ``memory_budget_gb``: above the budget auto
picks IVF-PQ with its inverted lists on disk, built shard by shard, and tunes nprobe to recall@10 >= 0.95
(re-ranking candidates with the stored vectors). A second process opens the index and answers 1,000
queries (vectors of the collection plus noise, one at a time through ``Index.search_vector``). Each process
reports its peak RSS (VmHWM: resident pages, including those of memory-mapped files). Recall@10 of those
queries is measured against exact search over all N vectors (a chunked scan, timed as "exact queries/s").
Needs about N x 1.6 KB of free disk.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import table
from search import clustered

PER_FILE = 1000

BUILD = """
import json, re, sys, time
import numpy as np
from audioemb.index import Index
from audioemb.runtime import load
path, out, budget, per_file = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
m = load(None)
v = np.load(path, mmap_mode="r")
n = len(v)
files = [{"path": f"f{i:07d}.flac", "size": 0, "mtime_ns": 0, "duration_s": per_file * 5.0}
         for i in range((n + per_file - 1) // per_file)]
seg = np.arange(n)
t = time.perf_counter()
idx = Index.from_vectors(out, v, files, seg // per_file, (seg % per_file) * 5.0, (seg % per_file) * 5.0 + 5.0,
                         model=m, root=".", memory_budget_gb=budget)
dt = time.perf_counter() - t
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024
print(json.dumps({"seconds": dt, "peak_mb": hwm, "info": idx.info, "disk": idx.disk_size()}))
"""

SEARCH = """
import json, re, sys, time
import numpy as np
from audioemb import _faiss
from audioemb._vectors import take
from audioemb.index import Index
out, path, nq = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
idx = Index.load(out)
open_s = time.perf_counter() - t
v = np.load(path, mmap_mode="r")
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


def make_vectors(path: Path, n: int, dim: int) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    clustered(n, dim, out=out)
    out.flush()
    del out


def run(code: str, *args) -> dict:
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
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
    tmp = Path(args.dir or tempfile.mkdtemp(prefix="audioemb-bigindex-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        vec = tmp / "vectors.npy"
        t = time.perf_counter()
        make_vectors(vec, args.vectors, dim)
        gen = time.perf_counter() - t
        shutil.rmtree(tmp / "idx", ignore_errors=True)
        b = run(BUILD, vec, tmp / "idx", args.memory_gb, PER_FILE)
        s = run(SEARCH, tmp / "idx", vec, args.queries)
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
        print(f"\n(vectors generated in {gen:.0f} s)")
        return text
    finally:
        if args.dir is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
