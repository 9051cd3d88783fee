"""Scanning and embedding a collection's files for :class:`audioemb.index.Index` (build and add), on the
shared path: :func:`audioemb.scan.scan_folder`, :func:`audioemb.scan.is_unchanged` and
:meth:`EmbeddingModel.encode_stream <audioemb.runtime.EmbeddingModel.encode_stream>`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ._index_store import Meta
from ._vectors import l2_normalize
from .runtime import EmbeddingModel
from .scan import FileEntry, is_unchanged, scan_folder


def _scan(root: Path, folders: list[str] | None = None) -> tuple[list[tuple[Path, str, FileEntry]],
                                                                 list[tuple[str, str]], list[str]]:
    """(path, stored relative path, entry) of every audio file under ``root``, the unlistable folders and the
    symlinked folders not followed; with ``folders`` (relative to ``root``: a merged index's sources) only
    under those."""
    if folders:
        files, unreadable, links = [], [], []
        for sub in folders:
            f, u, sl = _scan(root / sub)
            files += [(p, f"{sub}/{rel}", e) for p, rel, e in f]
            unreadable += [(sub if d == "." else f"{sub}/{d}", why) for d, why in u]
            links += [f"{sub}/{d}" for d in sl]
        return files, unreadable, links
    with scan_folder(root) as scan:
        # SQLite holds UTF-8: a name that is not valid UTF-8 is stored with its bad bytes as \xNN
        files = [(e.path, os.fsencode(e.rel).decode("utf-8", "backslashreplace"), e) for e in scan]
        return files, scan.unreadable, scan.links


def _embed_files(model: EmbeddingModel, todo: list, segments: float | None, batch_size: int,
                 on_file: Callable[[], None] = lambda: None, workers: int | None = None):
    """Yield (file record, [(start_s, end_s)], vectors (n, D)) per file, in order; a failed file has its
    error and none. Decoder processes and lanes as ``embed`` runs them (:func:`audioemb.embed.job_layout`)."""
    from .embed import job_layout

    none = np.zeros((0, model.embedding_dim), np.float32)
    items = ((i, path) for i, (path, _, _) in enumerate(todo))
    n, lanes = job_layout(model, workers, None)
    with contextlib.closing(model.encode_stream(items, batch_size=batch_size, segments=segments, workers=n,
                                                ordered=True, lanes=lanes)) as results:
        for r in results:
            _, rel, e = todo[r.key]
            rec = {"path": rel, "size": e.size, "mtime_ns": e.mtime_ns, "duration_s": r.duration_s,
                   "error": r.error, "warning": None if r.error else r.warning}
            if r.error:
                yield rec, [], none
            elif segments:
                yield rec, r.spans, r.vectors
            else:
                yield rec, r.spans, r.clip[None]
            on_file()


class _Collected:
    """Files, segments and vectors gathered for a build or an add."""

    def __init__(self, dim: int):
        self.files: list[dict] = []
        self.file_of: list[int] = []
        self.spans: list[tuple[float, float]] = []
        self.vecs: list[np.ndarray] = [np.zeros((0, dim), np.float32)]

    def add(self, rec: dict, spans: list, vecs: np.ndarray) -> None:
        self.file_of += [len(self.files)] * len(spans)
        self.files.append(rec)
        self.spans += spans
        self.vecs.append(l2_normalize(vecs))

    def meta(self, info: dict, first_row: int = 0) -> tuple[Meta, np.ndarray]:
        v = np.concatenate(self.vecs)
        s = np.array(self.spans, np.float64).reshape(-1, 2)
        return Meta(info, self.files, first_row + np.arange(len(v), dtype=np.int64),
                     np.array(self.file_of, np.int64), s[:, 0].copy(), s[:, 1].copy()), v


@contextlib.contextmanager
def _progress(total: int, enabled: bool, label: str = "embedding") -> Iterator[Callable[[], None]]:
    if not enabled or not total:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("files", total=total)
        yield lambda: bar.advance(task)


def _plan_add(files: list[dict], scanned: list, unreadable: list, prune: bool) -> tuple[list, set[int], int, int]:
    """What an ``Index.add`` does: (files to embed, indexes of old ``files`` to drop, how many are new, how
    many files no longer scanned are kept).

    New, changed (size or mtime_ns) and previously failed files are embedded; a changed file's old record
    is dropped, and with ``prune`` so is every file no longer scanned (never one under an unlistable folder);
    without it those are kept and counted.
    """
    from .audio import under

    known = {f["path"]: i for i, f in enumerate(files)}
    todo, drop, added = [], set(), 0
    for p, rel, st in scanned:
        i = known.get(rel)
        if i is None:
            todo.append((p, rel, st))
            added += 1
        elif not is_unchanged(files[i], st):
            todo.append((p, rel, st))
            drop.add(i)
    present = {s[1] for s in scanned}
    gone = {i for rel, i in known.items() if rel not in present and not any(under(rel, d) for d, _ in unreadable)}
    if prune:
        drop |= gone
    return todo, drop, added, 0 if prune else len(gone)
