"""``audioemb cluster`` on an index larger than its memory budget, or on an ``audioemb embed`` output: time
and peak RSS, before and after.

    python benchmarks/cluster_large.py [--vectors 1000000] [--memory-gb 0.25] [-k 50] [--method kmeans]
        [--source index|embed] [--baseline-src DIR]

Builds an index of N synthetic 192-d vectors with :mod:`index_large`'s recipe (IVF-PQ with its lists on disk
once the vectors exceed ``--memory-gb``), or with ``--source embed`` an embed output of N files holding the
same vectors (``embeddings.npy`` and ``manifest.jsonl``, as a finished ``audioemb embed`` leaves them), then
clusters it with ``cluster_collection(k=K, method=M)`` in a
fresh process and reports the wall time and peak RSS (VmHWM) of that process. With ``--baseline-src`` (a
checkout of an earlier commit) the same clustering runs with that code too, in the same run, and the
agreement of the two clusterings (ARI) is printed beside them. The k-means objective (mean cosine distance
of each vector to its centroid, in the projected space for local aggregation) says whether the clusterings
are equally good.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from common import table, work_folder
from index_large import BUILD, PER_FILE, Synthetic, run

CLUSTER = """
import json, re, sys, time
import numpy as np
from audioemb.cluster_report import cluster_collection
idx, out, k, method = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t = time.perf_counter()
s = cluster_collection(idx, out, k=k, method=method)
dt = time.perf_counter() - t
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024
print(json.dumps({"seconds": dt, "peak_mb": hwm, "n": s["n"]}))
"""


def _labels(folder: Path):
    """(cluster, distance) columns of OUT/assignments.csv."""
    import numpy as np

    with open(folder / "assignments.csv") as f:
        next(f)
        cols = [line.rsplit(",", 2)[1:] for line in f]
    return np.array([int(c) for c, _ in cols]), np.array([float(d) for _, d in cols])


def make_embed_output(dest: Path, n: int) -> None:
    """An embed output of ``n`` files whose embeddings are :class:`index_large.Synthetic`'s vectors."""
    import json

    import numpy as np

    from audioemb._embed_store import write_jsonl

    dest.mkdir(parents=True, exist_ok=True)
    v = Synthetic(n, 192)
    emb = np.lib.format.open_memmap(dest / "embeddings.npy", "w+", np.float32, (n, 192))
    for s in range(0, n, 100_000):
        emb[s:s + 100_000] = v[s:s + 100_000]
    emb.flush()
    del emb
    write_jsonl(dest / "manifest.jsonl", ({"path": f"f{i:07d}.flac", "size": 0, "mtime_ns": 0, "row": i}
                                          for i in range(n)))
    (dest / "info.json").write_text(json.dumps({"model": "synthetic", "embedding_dim": 192}))


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vectors", type=int, default=1_000_000)
    ap.add_argument("--memory-gb", type=float, default=0.25)
    ap.add_argument("-k", type=int, default=50)
    ap.add_argument("--method", default="kmeans", choices=["kmeans", "local-aggregation"])
    ap.add_argument("--source", default="index", choices=["index", "embed"])
    ap.add_argument("--baseline-src", default=None, help="A checkout of an earlier commit to compare with.")
    ap.add_argument("--dir", default=None, help="Work folder; an index already there is reused.")
    args = ap.parse_args(argv)
    with work_folder(args.dir, "audioemb-bigcluster-") as tmp:
        src_dir = tmp / ("idx" if args.source == "index" else "emb")
        if args.source == "embed" and not (src_dir / "manifest.jsonl").exists():
            make_embed_output(src_dir, args.vectors)
        elif args.source == "index" and not (src_dir / "current.json").exists():
            run(BUILD, args.vectors, src_dir, args.memory_gb, PER_FILE)
        variants = [("this commit", None)] + ([("baseline", Path(args.baseline_src))] if args.baseline_src else [])
        rows, labels = [], {}
        for name, src in variants:
            shutil.rmtree(tmp / name, ignore_errors=True)
            r = run(CLUSTER, src_dir, tmp / name, args.k, args.method, src=src)
            labels[name], dist = _labels(tmp / name)
            rows.append([name, args.source, args.method, f"{r['n']:,}", f"{r['n'] * 192 * 4 / 2**30:.2f}", args.k,
                         f"{r['seconds']:.0f}", f"{r['peak_mb'] / 1024:.2f}", f"{dist.mean():.4f}"])
        text = table(["code", "source", "method", "vectors (192-d)", "raw vectors (GiB)", "k", "cluster (s)",
                      "peak RSS (GiB)", "mean cosine distance to centroid"], rows)
        if len(labels) == 2:
            from sklearn.metrics import adjusted_rand_score

            text += (f"\n\nagreement of the two clusterings: ARI {adjusted_rand_score(*labels.values()):.3f} "
                     "(the synthetic vectors are 2,000 directions: any k-way split of them is about as good)")
        print(text)
        return text


if __name__ == "__main__":
    main()
