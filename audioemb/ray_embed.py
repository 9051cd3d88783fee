"""``embed_folder_ray``: the ``embed`` job on a Ray cluster, with Ray Data (the ``[ray]`` extra).

The driver lists the folder and compares it with OUT by the same rule as a local job
(:func:`audioemb.scan.is_unchanged`); the files to embed become a Ray Dataset whose batches are decoded
and embedded by Ray tasks across the cluster, each writing one shard into ``OUT/shards/``::

    shards/<id>.npy      (n, D) float32 embeddings of one batch of files
    shards/<id>.jsonl    their manifest records (as in ``manifest.jsonl``), sorted by path
    shards.json          the committed list of shards: {"shards": ["shards/<id>", ...]}

A shard's id is the hash of its files and their sizes and mtimes, and it is written atomically, so a task
retried after its worker was killed rewrites the same shard: nothing is lost or doubled. ``shards.json``
is replaced atomically once every task is done; until then readers see the previous run's shards. A
re-run embeds only new, changed and failed files; records they replace (and pruned files) are removed
by rewriting the shards that held them. :func:`audioemb.embed.read_embeddings`, ``index build --from``
and ``cluster`` read the shards as they read a local job's output.

Every node must see the folder, OUT and the model at the same paths (a shared file system), or use a
shipped model name; see docs/scale.md for object storage.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import itertools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._embed_store import SHARDS, EmbedError, _Sorted, iter_jsonl, write_jsonl
from .embed import PRUNE_FREE, EmbedSummary, _check_info, _frames_name, _record, _save_frames
from .errors import require
from .fsio import atomic_write, save_npy
from .runtime import EmbeddingModel, Layer, load
from .scan import FileEntry, plan, scan_folder

_MODELS: dict[tuple, EmbeddingModel] = {}  # per Ray worker process: the model, loaded once


def _model(ref: str) -> EmbeddingModel:
    key = (ref,)
    if key not in _MODELS:
        _MODELS[key] = load(ref, threads=1)
    return _MODELS[key]


def _shard_id(rels: list[str], sizes, mtimes) -> str:
    h = hashlib.sha1()
    for r, s, m in zip(rels, sizes, mtimes):
        h.update(f"{r}\0{int(s)}\0{int(m)}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:24]


def _embed_batch(batch: dict, root: str, out: str, model_ref: str, batch_size: int, layer: Layer,
                 normalize: bool, frames: bool) -> dict:
    """One Ray task: embed a batch of files and write its shard; returns the shard's name, counts, the worker's
    pid and its clock (``time.time()``) at start, model loaded, files embedded and shard written."""
    t0 = time.time()
    m, root_p, out_p = _model(model_ref), Path(root), Path(out)
    t1 = time.time()
    rels = [os.fsdecode(bytes(r)) for r in batch["rel"]]  # bytes: a name need not be valid UTF-8
    entries = [FileEntry(root_p / r if root_p.is_dir() else root_p, r, int(s), int(t))
               for r, s, t in zip(rels, batch["size"], batch["mtime_ns"])]
    name = "shards/" + _shard_id(rels, batch["size"], batch["mtime_ns"])
    recs, embs = [], []
    for r in m.encode_stream(((e, e.path) for e in entries), batch_size=batch_size, normalize=normalize,
                             layer=layer, frames=frames, ordered=True):
        rec = _record(r.key, r)
        if r.frames is not None:
            fname = _frames_name(rec["path"])
            (out_p / "frames").mkdir(exist_ok=True)
            atomic_write(out_p / fname, lambda p, fr=r.frames: _save_frames(p, fr))
            rec["frames"] = fname
        if r.clip is not None:
            rec["row"] = len(embs)
            embs.append(r.clip)
        recs.append(rec)
    recs.sort(key=lambda x: x["path"])  # the input batch is sorted already; keep the shard's order certain
    t2 = time.time()
    emb = np.stack(embs) if embs else np.zeros((0, m.embedding_dim), np.float32)
    (out_p / "shards").mkdir(exist_ok=True)
    atomic_write(out_p / (name + ".npy"), lambda p: save_npy(p, emb))
    atomic_write(out_p / (name + ".jsonl"), lambda p: write_jsonl(p, recs))
    return {"shard": [name], "embedded": [len(embs)], "failed": [len(recs) - len(embs)], "pid": [os.getpid()],
            "clock": [[t0, t1, t2, time.time()]]}


def _shards(out: Path) -> list[str]:
    return json.loads((out / SHARDS).read_text())["shards"] if (out / SHARDS).exists() else []


def _sorted_records(out: Path, names: list[str]):
    """Records of ``names`` merged into one path-sorted stream (each shard is sorted)."""
    return heapq.merge(*(iter_jsonl(out / (n + ".jsonl")) for n in names), key=lambda r: r["path"])


def embed_folder_ray(root: str | os.PathLike, out: str | os.PathLike, model: str | EmbeddingModel | None = None,
                     address: str | None = None, batch_size: int = 32, files_per_task: int = 64,
                     workers: int | None = None, frames: bool = False, layer: Layer = None, normalize: bool = True,
                     prune: bool = False, new_root: bool = False, log: Callable[[str], None] | None = None,
                     timings: dict | None = None) -> EmbedSummary:
    """Embed every audio file under ``root`` into ``out`` as shards, on the Ray cluster at ``address``
    (None: ``RAY_ADDRESS``, or a local one). ``workers`` caps the tasks running at once (None: one per
    CPU of the cluster). Same options, rules and summary as :func:`audioemb.embed.embed_folder`. A ``timings``
    dict is filled with the driver's phases (seconds) and each task's (see :func:`_timed`)."""
    ray = require("ray", "embed --ray", "ray")
    require("ray.data", "embed --ray", "ray")
    t0 = time.time()
    clocks = {"start": t0}
    root, out = Path(root), Path(out)
    m = model if isinstance(model, EmbeddingModel) else load(model)
    clocks["model"] = time.time()
    m.check_layer(layer)
    if (out / "manifest.jsonl").exists() or (out / "parts").exists():
        raise EmbedError(f"{out} holds a local job's output (manifest.jsonl); a Ray job writes shards. Use "
                         "another output folder, or run without --ray.")
    with scan_folder(root) as scan, contextlib.ExitStack() as stack:
        _check_info(out, m, normalize, layer, root, new_root)
        old = _shards(out)
        p = plan(scan, _sorted_records(out, old), need_frames=frames)
        stack.callback(p.close)
        todo, gone, kept = p.todo, list(p.gone), p.kept
        drop = prune or len(gone) <= PRUNE_FREE
        ok = 0
        new: list[str] = []
        tasks: list[tuple] = []
        clocks["plan"] = clocks["ray_init"] = clocks["execute"] = time.time()
        if len(todo):
            if not ray.is_initialized():
                ray.init(address=address, log_to_driver=False, include_dashboard=False)
            clocks["ray_init"] = time.time()
            items = [{"rel": os.fsencode(r), "size": s, "mtime_ns": t} for r, s, t in todo]
            ds = ray.data.from_items(items, override_num_blocks=max(1, -(-len(todo) // files_per_task)))
            ds = ds.map_batches(_embed_batch, batch_size=files_per_task, batch_format="numpy", num_cpus=1,
                                compute=ray.data.TaskPoolStrategy(size=workers),  # tasks retry forever: Ray
                                # Data's default max_retries=-1 reruns a task whose worker died
                                fn_kwargs={"root": str(root.resolve()), "out": str(out.resolve()),
                                           "model_ref": _model_ref(m), "batch_size": batch_size, "layer": layer,
                                           "normalize": normalize, "frames": frames})
            for row in ds.iter_rows():
                new.append(str(row["shard"]))
                ok += int(row["embedded"])
                tasks.append((int(row["pid"]), *map(float, row["clock"])))
            clocks["execute"] = time.time()
            if timings is not None:
                timings["ray_data_stats"] = ds.stats()
        remove = sorted(set(p.replaced) | (set(gone) if drop else set()))
        kept_shards = _rewrite(out, old, remove)
        removed = len(gone) if drop else 0
        names = sorted(set(kept_shards) | set(new))
        atomic_write(out / SHARDS, json.dumps({"shards": names}, indent=0))
        _clean(out, names)
        failed = warned = 0
        for r in _sorted_records(out, names):
            failed += bool(r.get("error"))
            warned += bool(r.get("warning"))
        summary = EmbedSummary(len(scan), ok, kept, failed, removed, time.time() - t0, out,
                               gone_kept=0 if drop else len(gone), unreadable=scan.unreadable, warned=warned)
    if timings is not None:
        timings.update(_timed(clocks, tasks, time.time()))
    if log:
        log(summary.line())
    return summary


def _timed(clocks: dict, tasks: list[tuple], end: float) -> dict:
    """The driver's phases in seconds (model load, listing and plan, ``ray.init``, the Ray Data execution,
    the final merge and commit) and each task's (worker pid, start after the execution began, model load,
    decode + embed, shard write). Task clocks are the workers' own, so offsets assume synchronised clocks."""
    names = ["start", "model", "plan", "ray_init", "execute"]
    out = {f"{b}_s": clocks[b] - clocks[a] for a, b in itertools.pairwise(names)}
    out["merge_s"], out["total_s"] = end - clocks["execute"], end - clocks["start"]
    out["tasks"] = [{"pid": pid, "start_s": t0 - clocks["ray_init"], "model_s": t1 - t0, "embed_s": t2 - t1,
                     "write_s": t3 - t2} for pid, t0, t1, t2, t3 in sorted(tasks, key=lambda t: t[1])]
    return out


def _model_ref(m: EmbeddingModel) -> str:
    """How a Ray worker loads ``m``: its folder's absolute path."""
    return str(Path(m.folder.path).resolve())


def _rewrite(out: Path, names: list[str], remove: list[str]) -> list[str]:
    """Shards without the records of ``remove`` (path-sorted): shards holding none are kept as they are,
    the others rewritten under a new id."""
    if not remove:
        return names
    result = []
    for name in names:
        rm = _Sorted(remove)
        recs = list(iter_jsonl(out / (name + ".jsonl")))
        keep = [r for r in recs if r["path"] not in rm]
        if len(keep) == len(recs):
            result.append(name)
            continue
        if not keep:
            continue
        emb = np.load(out / (name + ".npy"))
        rows = [r["row"] for r in keep if r.get("row") is not None]
        for i, r in enumerate(r for r in keep if r.get("row") is not None):
            r["row"] = i
        new = "shards/" + _shard_id([r["path"] for r in keep], [r.get("size", 0) for r in keep],
                                    [r.get("mtime_ns", 0) for r in keep]) + "r"
        kept_emb = emb[rows].astype(np.float32).reshape(len(rows), -1)
        atomic_write(out / (new + ".npy"), lambda p, a=kept_emb: save_npy(p, a))
        atomic_write(out / (new + ".jsonl"), lambda p, k=keep: write_jsonl(p, k))
        result.append(new)
    return result


def _clean(out: Path, names: list[str]) -> None:
    """Delete shard files that ``shards.json`` does not list (replaced shards, those of failed attempts)."""
    live = {Path(n).name for n in names}
    for p in (out / "shards").glob("*") if (out / "shards").is_dir() else []:
        if p.name.split(".", 1)[0] not in live:
            p.unlink(missing_ok=True)
