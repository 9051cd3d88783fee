"""Scanning and embedding a collection's files for :class:`audioemb.index.Index` (build and add).

Moved out of ``index.py`` unchanged; it will be served by the shared streaming encode path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from . import audio as audio_io
from ._index_store import Meta
from .runtime import Batcher, EmbeddingModel, nonfinite_reason, windows


def _scan(root: Path) -> tuple[list[tuple[Path, str, os.stat_result]], list[tuple[str, str]]]:
    """(path, stored relative path, stat) of every audio file under ``root``, and the unlistable folders."""
    out = []
    paths, unreadable = audio_io.scan_audio(root)
    for p in paths:
        # SQLite holds UTF-8: a name that is not valid UTF-8 is stored with its bad bytes as \xNN
        rel = os.fsencode(audio_io.rel_path(p, root)).decode("utf-8", "backslashreplace")
        try:
            out.append((p, rel, p.stat()))
        except OSError:
            out.append((p, rel, os.stat_result((0,) * 10)))
    return out, unreadable


def _segments(model: EmbeddingModel, path: Path, seconds: float,
              report: dict | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start sample, length, audio) of consecutive ``seconds`` windows of a file, decoded as a stream."""
    seg = max(1, int(round(seconds * model.sample_rate)))
    prev = None
    for w in windows(audio_io.stream(path, model.sample_rate, report=report), seg, 1):
        if prev is not None and w.valid < seg / 10:  # a sliver: already covered by the previous window
            return
        if prev is not None and w.valid < seg / 2:  # short tail: the file's last full window instead
            yield w.start + w.valid - seg, seg, np.concatenate([prev[w.valid:], w.audio[:w.valid]])
        else:
            yield w.start, w.valid, w.audio[:w.valid]
        prev = w.audio


def _embed_files(model: EmbeddingModel, todo: list, segments: float | None, batch_size: int,
                 on_file: Callable[[], None] = lambda: None, chunk_files: int = 64):
    """Yield (file record, [(start_s, end_s)], vectors (n, D)) per file; a failed file has its error and none."""
    sr = model.sample_rate
    none = np.zeros((0, model.embedding_dim), np.float32)
    for c in range(0, len(todo), chunk_files):
        on_result, finish = model.make_collector(True, None)
        batcher = Batcher(model.run_batch(None), batch_size, on_result)
        done, key = [], 0
        for path, rel, st in todo[c:c + chunk_files]:
            rec = {"path": rel, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "duration_s": None, "error": None,
                   "warning": None}
            keys, spans, n, report = [], [], 0, {}
            try:
                if segments:
                    for start, length, audio in _segments(model, path, segments, report):
                        keys.append(key)
                        key += 1  # before decoding, so a failing file never shares a key with the next one
                        spans.append((start / sr, (start + length) / sr))
                        for w in model.window_stream(audio, keys[-1]):
                            batcher.add(w)
                        n = max(n, start + length)
                else:
                    keys.append(key)
                    key += 1
                    for w in model.window_stream(path, keys[-1], report=report):
                        batcher.add(w)
                        n += w.valid
                    spans.append((0.0, n / sr))
                rec["duration_s"] = round(n / sr, 4)
                rec["warning"] = "; ".join(report.get("warnings", [])) or None
            except audio_io.AudioError as e:
                rec["error"] = e.reason
            except Exception as e:  # a decoder bug must not stop the job: record it with the file
                rec["error"] = f"{type(e).__name__}: {e}"
            done.append((rec, keys, spans, report.get("peak", 0.0)))
        batcher.flush()
        for rec, keys, spans, peak in done:
            vecs = [finish(k, discard=bool(rec["error"]))[0] for k in keys]
            if not rec["error"]:
                rec["error"] = next((r for v in vecs if (r := nonfinite_reason(v, None, peak))), None)
            if rec["error"]:
                rec["warning"] = None
                yield rec, [], none
            else:
                yield rec, spans, np.stack(vecs)
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
        self.vecs.append(_l2(vecs))

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


def _l2(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _plan_add(files: list[dict], scanned: list, unreadable: list, prune: bool) -> tuple[list, set[int], int]:
    """What an ``Index.add`` does: (files to embed, indexes of old ``files`` to drop, how many are new).

    New, changed (size or mtime_ns) and previously failed files are embedded; a changed file's old record
    is dropped, and with ``prune`` so is every file no longer scanned (never one under an unlistable folder).
    """
    known = {f["path"]: i for i, f in enumerate(files)}
    todo, drop, added = [], set(), 0
    for p, rel, st in scanned:
        i = known.get(rel)
        if i is None:
            todo.append((p, rel, st))
            added += 1
        elif files[i]["error"] or (files[i]["size"], files[i]["mtime_ns"]) != (st.st_size, st.st_mtime_ns):
            todo.append((p, rel, st))
            drop.add(i)
    if prune:
        present = {s[1] for s in scanned}
        drop |= {i for rel, i in known.items() if rel not in present
                 and not any(audio_io.under(rel, d) for d, _ in unreadable)}
    return todo, drop, added
