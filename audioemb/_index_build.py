"""Writing index versions for :mod:`audioemb.index`: a new index folder from vectors (a build, ``--from``, a
merge), an updated version after ``add``, and the faiss index of the live rows (its lists in memory or on
disk) with its measured recall recorded in the metadata.

Vectors are streamed: a memory-mapped ``vectors.npy`` (or an embed output's ``embeddings.npy``) is read in
chunks whose pages are released as they are done, so a collection larger than memory is indexed in bounded
memory; see docs/benchmarks.md for the figures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

import numpy as np

from . import __version__, _faiss
from ._index_store import CURRENT, IndexStoreError, Meta, Version, locked
from ._vectors import RowView, live_vectors
from .fsio import pid_alive
from .registry import model_ref


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ------------------------------------------------------------------------------------------------- the model
def model_sha(m) -> str | None:
    """The ONNX file's sha256 of a loaded model (what older indexes recorded as its identity)."""
    return m.folder.config["files"].get("model.onnx")


def same_model(m, info: dict) -> bool:
    """Whether ``m`` is the model ``info`` (of an index or embed output) was written with: by identity
    (config + weights), or by the ONNX sha256 alone for what older versions wrote."""
    if info.get("model_id"):
        return m.folder.identity == info["model_id"]
    return model_sha(m) == info.get("model_sha256")


def model_info(m) -> dict:
    """What an index records about its model."""
    return {"model": m.name, "model_sha256": model_sha(m), "model_id": m.folder.identity, "model_ref": model_ref(m),
            "dim": m.embedding_dim, "sample_rate": m.sample_rate}


def check_type(index_type: str) -> None:
    """Refuse an index type that is neither ``auto`` nor one of :data:`_faiss.TYPES`."""
    if index_type != "auto" and index_type not in _faiss.TYPES:
        raise ValueError(f"index type must be auto, {', '.join(_faiss.TYPES)}; got {index_type!r}")


def new_info(model: dict, root: str | os.PathLike, segments: float | None, index_type: str, memory_budget_gb: float,
             target_recall: float, seed: int, unreadable: list | None = None, links: list | None = None) -> dict:
    """The info table of a new index (counts, type and recall are added when its faiss index is built)."""
    check_type(index_type)
    return {"format_version": 1, "audioemb_version": __version__, **model,
            "unreadable_folders": [list(u) for u in unreadable or []], "symlinked_folders": list(links or []),
            "metric": "inner product of L2-normalised vectors (cosine)", "segments_s": segments,
            "root": str(Path(root).resolve()), "index_type_requested": index_type,
            "memory_budget_gb": memory_budget_gb, "target_recall": target_recall, "seed": seed,
            "created": now_utc()}


# ----------------------------------------------------------------------------------------------- faiss index
def make_faiss(meta: Meta, stored: np.ndarray, ver: Version, kind: str | None = None):
    """Build the faiss index of ``meta``'s live rows of ``stored`` (choosing its type unless forced) and
    record type, parameters and recall in ``meta.info``. IVF indexes whose raw vectors exceed the memory
    budget get their lists on disk, in ``ver.path("ivfdata")``. Returns (index, on_disk)."""
    info = meta.info
    n, dim = len(meta.rows), info["dim"]
    req = info["index_type_requested"]
    kind = kind or (_faiss.choose_type(n, dim, info["memory_budget_gb"]) if req == "auto" else req)
    ondisk = kind in ("ivf", "ivfpq") and _faiss.on_disk(n, dim, info["memory_budget_gb"])
    ivfdata = ver.path("ivfdata")
    ivfdata.unlink(missing_ok=True)
    index, params, recall = _faiss.make(live_vectors(stored, meta.rows), meta.rows, kind,
                                        _faiss.default_params(kind, n, dim), stored, target=info["target_recall"],
                                        seed=info.get("seed", 0), ivfdata=str(ivfdata) if ondisk else None)
    info.update(index_type=kind, on_disk=ondisk)
    record(meta, params, recall, len(stored))
    return index, ondisk


def record(meta: Meta, params: dict, recall: float, n_rows: int) -> None:
    """Record the tuned parameters, measured recall@10 and counts of a new version in ``meta.info``."""
    meta.info.update(build_params=params, **{"recall@10": round(recall, 4)}, count=len(meta.rows),
                     n_files=len(meta.files), n_failed=sum(1 for f in meta.files if f["error"]), n_rows=n_rows,
                     updated=now_utc())


# ---------------------------------------------------------------------------------------------- new indexes
def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an output that is not an index folder (or an empty one), or an index without ``overwrite``."""
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / CURRENT).exists())):
        raise IndexStoreError(f"{out} exists and is not an audioemb index; choose another output folder")
    if (out / CURRENT).exists() and not overwrite:
        raise IndexStoreError(f"{out} is already an index; use `audioemb index add` to update it, or --force "
                              "(overwrite=True) to rebuild it")


def create(out: Path, meta: Meta, parts: list, overwrite: bool) -> None:
    """Write a new index at ``out`` holding ``meta`` and the concatenated vector ``parts`` (L2-normalised on
    the way). A new folder is built under a temporary name and renamed into place; an existing index
    (``overwrite``) gets a new version under its writer lock, so its readers keep working."""
    check_out(out, overwrite)
    if not len(meta.rows):
        raise IndexStoreError(f"nothing to index: {len(meta.files)} audio files under {meta.info['root']}, none "
                              "embedded" + "".join(f"\n  {f['path']}: {f['error']}" for f in meta.files[:10]))

    def write(folder: Path) -> None:
        ver = Version(folder)
        stored = ver.write_vectors(parts, normalize=True)
        index, ondisk = make_faiss(meta, stored, ver)
        ver.commit(meta, index, ivfdata=ondisk)

    if (out / CURRENT).exists():
        with locked(out):
            write(out)
        return
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    remove_stale_builds(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        os.rename(tmp, out)  # replaces an empty folder too
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_builds(out: Path) -> None:
    """Delete temporary build folders for ``out`` left by processes that no longer exist."""
    for p in out.parent.glob(f".{out.name}.building-*"):
        with contextlib.suppress(ValueError, OSError):
            if not pid_alive(int(p.name.rsplit("-", 1)[1])):
                shutil.rmtree(p, ignore_errors=True)


# -------------------------------------------------------------------------------------------------- updates
def update(folder: Path, cur: dict, old: Meta, index, vectors: np.ndarray, new: Meta, new_vecs: np.ndarray,
           drop: list[int]) -> bool:
    """Commit the next version of the index at ``folder`` (writer lock held): ``old`` without its files
    ``drop``, plus ``new`` (files and segments whose rows follow ``vectors``, L2-normalised ``new_vecs``).
    Dead rows stay in vectors.npy until they outnumber the live ones; then, or when the automatic type
    changes, the index is rebuilt compactly. On-disk lists get a new .ivfdata (the old one stays for
    readers). Returns True if rebuilt from scratch."""
    info = dict(old.info)
    keep = np.setdiff1d(np.arange(len(old.files)), np.asarray(drop, np.int64))
    remap = np.full(len(old.files), -1, np.int64)
    remap[keep] = np.arange(len(keep))
    seg_keep = remap[old.file_of] >= 0
    meta = Meta(info, [old.files[i] for i in keep] + new.files,
                np.concatenate([old.rows[seg_keep], new.rows]),
                np.concatenate([remap[old.file_of[seg_keep]], new.file_of + len(keep)]),
                np.concatenate([old.start[seg_keep], new.start]), np.concatenate([old.end[seg_keep], new.end]))
    live, removed, n_rows, kind = len(meta.rows), old.rows[~seg_keep], len(vectors), info["index_type"]
    want = _faiss.choose_type(live, info["dim"], info["memory_budget_gb"]) \
        if info["index_type_requested"] == "auto" else kind
    ver = Version(folder)
    ondisk = "ivfdata" in cur["files"]
    rebuild = want != kind or n_rows + len(new_vecs) - live > live or \
        ondisk != (kind in ("ivf", "ivfpq") and _faiss.on_disk(live, info["dim"], info["memory_budget_gb"]))
    if rebuild:  # compact: renumber live rows 0..live-1 and build afresh
        stored = ver.write_vectors([RowView(vectors, old.rows[seg_keep]), new_vecs])
        meta.rows = np.arange(live, dtype=np.int64)
        index, ondisk = make_faiss(meta, stored, ver, kind=want)
    else:
        stored = ver.write_vectors([vectors, new_vecs]) if len(new_vecs) else vectors
        if not len(new_vecs):
            ver.reuse_vectors()
        params = info["build_params"]
        if ondisk:
            index = _faiss.add_on_disk(str(folder / cur["files"]["faiss"]), new_vecs, new.rows, removed,
                                       str(ver.path("ivfdata")), kind, params)
        elif len(removed) and kind == "hnsw":  # HNSW cannot remove: rebuild the graph from the stored vectors
            rows = np.sort(meta.rows)
            index = _faiss.build(RowView(stored, rows), rows, kind, params)
        else:
            index = _faiss.updated(index, new_vecs, new.rows, removed)
        recall, params = _faiss.tune(index, kind, params, stored, meta.rows, target=info["target_recall"],
                                     seed=info.get("seed", 0))
        record(meta, params, recall, len(stored))
    ver.commit(meta, index, ivfdata=ondisk)
    return bool(rebuild)
