"""Indexes of vectors computed elsewhere, for :class:`audioemb.index.Index`: an ``audioemb embed`` output
(local or a Ray job's shards), arrays given by the caller, and the merge of several indexes. Nothing is
embedded again, and vectors are streamed from their memory-mapped files, never loaded whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ._index_build import create, model_sha, new_info, same_model
from ._index_store import FILE_COLS, IndexStoreError, Meta, ModelMismatchError, open_version
from ._vectors import RowView, live_vectors
from .registry import RETIRED


def embed_output(out: Path, model, device: str = "auto"):
    """(model, files, file_of, spans (N, 2), vector parts, recorded root) of an ``audioemb embed`` output
    folder, checked against ``model`` (None: the model it records). One vector per file; files that failed,
    or whose stored vector is not finite, are kept as failed files without one."""
    from ._embed_store import entries
    from .runtime import EmbeddingModel, load

    try:
        have = json.loads((out / "info.json").read_text())
    except FileNotFoundError:
        raise IndexStoreError(f"{out}: no info.json; not an `audioemb embed` output folder") from None
    if model is None:  # the recorded folder or shipped name; older outputs record the name only
        ref = have.get("model_ref") or have["model"]
        try:
            model = load(ref, device=device)
        except Exception as e:
            hint = "" if ref in RETIRED else "; pass its folder as model"  # a retired model's vectors are stale
            where = "" if ref == have["model"] else f" from {ref}"
            raise IndexStoreError(f"{out} was embedded with model {have['model']!r}{where}, which cannot be loaded "
                                  f"({e}){hint}") from None
    m = model if isinstance(model, EmbeddingModel) else load(model, device=device)
    if have.get("model") != m.name or not same_model(m, have):
        raise ModelMismatchError(f"{out} was embedded with model {have.get('model')!r} (sha256 "
                                 f"{str(have.get('model_sha256'))[:12]}), not {m.name!r} "
                                 f"(sha256 {str(model_sha(m))[:12]})")
    if have.get("layer") is not None:
        raise ModelMismatchError(f"{out} holds layer {have['layer']!r} embeddings; queries use the last layer")
    files, groups = [], []  # groups: [array, its rows, their files, their durations] per source array
    for r, emb, row in entries(out):  # streamed: local output, unmerged parts or a Ray job's shards
        if row is not None:
            if not groups or groups[-1][0] is not emb:
                groups.append([emb, [], [], []])
            for lst, x in zip(groups[-1][1:], (row, len(files), float(r.get("duration_s") or 0.0))):
                lst.append(x)
        files.append({k: r.get(k) for k in FILE_COLS})
    file_of, spans, parts = [], [], []
    for emb, rows, fids, durs in groups:
        view, ok = RowView(emb, rows), np.ones(len(rows), bool)
        for s in range(0, len(rows), 65536):  # an older version may have stored non-finite rows
            ok[s:s + 65536] = np.isfinite(view[s:s + 65536]).all(axis=1)
        for i in np.flatnonzero(~ok):
            files[fids[i]]["error"] = "non-finite embedding (NaN or Inf) in the embed output"
        parts.append(RowView(emb, np.asarray(rows)[ok]))
        file_of += [f for f, good in zip(fids, ok) if good]
        spans += [(0.0, d) for d, good in zip(durs, ok) if good]
    return m, files, np.asarray(file_of, np.int64), np.asarray(spans, np.float64).reshape(-1, 2), parts, \
        have.get("root")


def check_moved(files: list[dict], root: Path, out: Path, recorded: str) -> None:
    """Refuse ``root`` as the folder of the embed output ``out`` (embedded from ``recorded``) unless every file
    it records is there with its recorded size: the collection moved, not another folder."""
    bad = []
    for f in files:
        try:
            size = (root / f["path"]).stat().st_size
        except OSError:
            size = None
        if size is None or (f.get("size") is not None and size != f["size"]):
            bad.append(f"{f['path']} ({'missing' if size is None else 'another size'})")
    if bad:
        raise IndexStoreError(f"{out} was embedded from {recorded}, and {len(bad)} of its {len(files)} files are "
                              f"not in {root} as embedded: {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}; "
                              "give the folder it was embedded from, or build the index from the folder itself")


def from_vectors(out: Path, parts: list, files: list[dict], file_of, start, end, model: dict,
                 root: str | os.PathLike, overwrite: bool = False, **options) -> None:
    """Write an index at ``out`` of the concatenated vector ``parts`` (arrays, memory maps or row views):
    segment ``i`` is ``[start[i], end[i]]`` seconds of ``files[file_of[i]]``, embedded by the model that
    ``model`` describes (:func:`model_info`). ``options``: segments and those of :func:`new_info`."""
    n = sum(len(p) for p in parts)
    for p in parts:
        if len(p.shape) != 2 or p.shape[1] != model["dim"]:
            raise ModelMismatchError(f"vectors have shape {tuple(p.shape)}; model {model['model']!r} embeds "
                                     f"{model['dim']}-d vectors")
    file_of = np.asarray(file_of, np.int64)
    if not len(file_of) == len(start) == len(end) == n:
        raise ValueError(f"{n} vectors but {len(file_of)} file_of, {len(start)} start and {len(end)} end values")
    if n and (file_of.min() < 0 or file_of.max() >= len(files)):
        raise ValueError(f"file_of must index the {len(files)} files")
    info = new_info(model, root, options.pop("segments", None), **options)
    recs = [{c: f.get(c) for c in FILE_COLS} for f in files]
    meta = Meta(info, recs, np.arange(n, dtype=np.int64), file_of, np.asarray(start, np.float64),
                np.asarray(end, np.float64))
    create(out, meta, parts, overwrite)


def merge(sources: list, out: Path, overwrite: bool = False, **options) -> None:
    """Write at ``out`` one index of every file of the indexes ``sources`` (one model, one segment length;
    e.g. built on several machines, or from shards of a collection). Paths become relative to the sources'
    common folder; the vectors are copied, not embedded again. ``options`` as for :func:`from_vectors`."""
    if len(sources) < 1:
        raise ValueError("give at least one index to merge")
    opened = [(Path(s), *open_version(Path(s))) for s in sources]
    first = opened[0][2].info
    for path, _, meta, _, _ in opened[1:]:
        i = meta.info
        if (i.get("model_id") or i["model_sha256"]) != (first.get("model_id") or first["model_sha256"]):
            raise ModelMismatchError(f"{path} was built with model {i['model']!r}, {opened[0][0]} with "
                                     f"{first['model']!r}; only indexes of one model can be merged")
        if i.get("segments_s") != first.get("segments_s"):
            raise ValueError(f"{path} indexes {i.get('segments_s') or 'whole files'}, {opened[0][0]} "
                             f"{first.get('segments_s') or 'whole files'}; they cannot be merged")
    root = Path(os.path.commonpath([m.info["root"] for _, _, m, _, _ in opened]))
    files, file_of, start, end, parts, seen, unreadable = [], [], [], [], [], {}, []
    prefixes = [Path(os.path.relpath(m.info["root"], root)).as_posix() for _, _, m, _, _ in opened]
    for (path, _, m, _, vectors), prefix in zip(opened, prefixes):
        unreadable += [(d if prefix == "." else (prefix if d == "." else f"{prefix}/{d}"), why)
                       for d, why in m.info.get("unreadable_folders") or []]
        file_of.append(m.file_of + len(files))
        for f in m.files:
            rec = dict(f, path=f["path"] if prefix == "." else f"{prefix}/{f['path']}")
            if rec["path"] in seen:
                raise IndexStoreError(f"{rec['path']} is in both {seen[rec['path']]} and {path}")
            seen[rec["path"]] = path
            files.append(rec)
        start.append(m.start)
        end.append(m.end)
        parts.append(live_vectors(vectors, m.rows))
    model = {k: first.get(k) for k in ("model", "model_sha256", "model_id", "model_ref", "dim", "sample_rate")}
    options.setdefault("seed", first.get("seed", 0))
    info = new_info(model, root, first.get("segments_s"), **options)
    info["unreadable_folders"] = unreadable
    if "." not in prefixes:  # the common folder holds more than the sources' folders: `add` scans only these
        info["folders"] = sorted(set(prefixes))
    n = sum(len(p) for p in parts)
    meta = Meta(info, files, np.arange(n, dtype=np.int64), np.concatenate(file_of), np.concatenate(start),
                np.concatenate(end))
    create(out, meta, parts, overwrite)
