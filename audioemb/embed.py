"""``embed_folder``: embed every audio file under a folder into OUT, resumably and crash-safely.

OUT holds::

    embeddings.npy       (N, D) float32, one row per embedded file
    manifest.jsonl       one JSON object per input file: path (relative to the folder), row (or null),
                         duration_s, sample_rate, channels, error (null or a message), size, mtime_ns
                         [, warning: what was wrong but still embedded (zeroed NaN samples, truncation)]
                         [, frames: "frames/<id>.npz" with embeddings (T, F) and timestamps (T,)]
    info.json            the model (name, identity), settings and folder (root) OUT was written with
    parts/               work not yet merged into embeddings.npy (only after an interrupted run)

Progress is written to ``parts/`` atomically every few hundred files; ``embeddings.npy`` and
``manifest.jsonl`` are replaced only at the end of a run, through a journal committed by ``merge.json``
(see :mod:`audioemb._embed_store`), so a run killed at any moment leaves OUT readable, and the next run
finishes the job with nothing lost and nothing doubled. Files whose size and modification time are
unchanged are kept; new, changed and previously failed files are (re-)embedded; files gone from the
folder are dropped only when few are gone (``PRUNE_FREE``) or ``prune`` is set.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from ._embed_store import EmbedError, atomic_write, merge, read_embeddings, recover, save_npy, write_jsonl
from .audio import AudioError, info, rel_path, scan_audio, under
from .runtime import Batcher, EmbeddingModel, Layer, Window, load, nonfinite_reason

__all__ = ["EmbedError", "EmbedSummary", "embed_folder", "read_embeddings"]
PRUNE_FREE = 5  # at most this many vanished files are removed without prune=True


@dataclass
class EmbedSummary:
    total: int
    embedded: int
    kept: int
    failed: int
    removed: int
    seconds: float
    out: Path
    gone_kept: int = 0  # files no longer in the folder, kept because removing them needs prune
    unreadable: list = field(default_factory=list)  # (folder, reason) that could not be listed
    warned: int = 0

    def line(self) -> str:
        s = (f"embedded {self.embedded} files, kept {self.kept}, failed {self.failed}, removed {self.removed} "
             f"({self.total} in the folder, {self.seconds:.1f} s) -> {self.out}")
        if self.warned:
            s += f"; {self.warned} embedded with warnings (see manifest.jsonl)"
        if self.gone_kept:
            s += (f"; {self.gone_kept} files no longer in the folder were kept: use --prune (prune=True) to remove "
                  "them")
        if self.unreadable:
            s += f"; {len(self.unreadable)} folders could not be read, their files were kept"
        return s


def _frames_name(rel: str) -> str:
    return "frames/" + hashlib.sha1(rel.encode("utf-8", "surrogateescape")).hexdigest()[:20] + ".npz"


class _Job:
    """One run of :func:`embed_folder`: producers decode windows, the main thread runs the model."""

    def __init__(self, model: EmbeddingModel, root: Path, out: Path, batch_size: int, workers: int, frames: bool,
                 layer: Layer, normalize: bool, flush_every: int, flush_seconds: float):
        self.model, self.root, self.out = model, root, out
        self.batch_size, self.workers, self.frames, self.layer = batch_size, max(1, workers), frames, layer
        self.normalize, self.flush_every, self.flush_seconds = normalize, flush_every, flush_seconds
        self.part_recs: list[dict] = []
        self.part_embs: list[np.ndarray] = []
        self.n_part = len(list((out / "parts").glob("part-*.jsonl"))) if (out / "parts").exists() else 0
        self.last_flush = time.time()

    def flush(self) -> None:
        if not self.part_recs:
            return
        parts = self.out / "parts"
        parts.mkdir(exist_ok=True)
        self.n_part += 1
        stem = parts / f"part-{self.n_part:06d}-{os.getpid()}"
        emb = np.stack(self.part_embs) if self.part_embs else np.zeros((0, self.model.embedding_dim), np.float32)
        atomic_write(stem.with_suffix(".npy"), lambda p: save_npy(p, emb))
        atomic_write(stem.with_suffix(".jsonl"), lambda p: write_jsonl(p, self.part_recs))
        self.part_recs, self.part_embs = [], []
        self.last_flush = time.time()

    def add(self, rec: dict, emb: np.ndarray | None) -> None:
        if emb is not None:
            rec["row"] = len(self.part_embs)
            self.part_embs.append(emb)
        self.part_recs.append(rec)
        if len(self.part_recs) >= self.flush_every or time.time() - self.last_flush > self.flush_seconds:
            self.flush()

    def run(self, todo: list[tuple[int, Path, str, os.stat_result]], on_done: Callable[[], None]) -> tuple[int, int]:
        model = self.model
        on_result, finish = model.make_collector(self.normalize, self.layer, want_frames=self.frames)
        failed_keys: set[int] = set()
        done = {"ok": 0, "failed": 0}
        pending: dict[int, dict] = {}  # key -> {"rec", "windows": expected or None, "seen": int, "valid": int}

        def on_window(w: Window, emb, frames, layers) -> None:
            if w.key in failed_keys:
                return
            on_result(w, emb, frames, layers)
            st = pending[w.key]
            st["seen"] += 1
            maybe_finish(w.key)

        def maybe_finish(key: int) -> None:
            st = pending[key]
            if st["windows"] is None or st["seen"] < st["windows"]:
                return
            clip, fr = finish(key)
            rec = st["rec"]
            rec["duration_s"] = round(st["valid"] / model.sample_rate, 4)
            del pending[key]
            bad = nonfinite_reason(clip, fr, st["report"].get("peak", 0.0))
            if bad:
                rec["error"] = bad
                self.add(rec, None)
                done["failed"] += 1
                on_done()
                return
            if st["report"].get("warnings"):
                rec["warning"] = "; ".join(st["report"]["warnings"])
            if fr is not None:
                name = _frames_name(rec["path"])
                (self.out / "frames").mkdir(exist_ok=True)
                atomic_write(self.out / name, lambda p: _save_frames(p, fr))
                rec["frames"] = name
            self.add(rec, clip)
            done["ok"] += 1
            on_done()

        batcher = Batcher(model.run_batch(self.layer), self.batch_size, on_window)
        q: queue.Queue = queue.Queue(maxsize=max(8, 2 * self.batch_size))
        work: queue.Queue = queue.Queue()
        for t in todo:
            work.put(t)
        stop = threading.Event()

        def produce() -> None:
            while not stop.is_set():
                try:
                    key, path, rel, st = work.get_nowait()
                except queue.Empty:
                    q.put(("idle", None, None))
                    return
                rec = {"path": rel, "row": None, "duration_s": None, "sample_rate": None, "channels": None,
                       "error": None, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
                try:
                    meta = info(path)
                    rec.update(sample_rate=meta.sample_rate, channels=meta.channels,
                               duration_s=round(meta.duration_s, 4))
                    q.put(("start", key, rec))
                    n = valid = 0
                    report: dict = {}
                    for w in model.window_stream(path, key, report=report):
                        q.put(("window", key, w))
                        n += 1
                        valid += w.valid
                        if stop.is_set():
                            return
                    q.put(("end", key, (n, valid, report)))
                except AudioError as e:
                    q.put(("error", key, (rec, e.reason)))
                except Exception as e:  # a decoder bug must not stop the job: report it with the file
                    q.put(("error", key, (rec, f"{type(e).__name__}: {e}")))

        threads = [threading.Thread(target=produce, daemon=True) for _ in range(min(self.workers, max(1, len(todo))))]
        for t in threads:
            t.start()
        idle = 0
        try:
            while idle < len(threads):
                kind, key, payload = q.get()
                if kind == "idle":
                    idle += 1
                elif kind == "start":
                    pending[key] = {"rec": payload, "windows": None, "seen": 0, "valid": 0, "report": {}}
                elif kind == "window":
                    batcher.add(payload)
                elif kind == "end":
                    pending[key]["windows"], pending[key]["valid"], pending[key]["report"] = payload
                    maybe_finish(key)
                elif kind == "error":
                    rec, reason = payload
                    failed_keys.add(key)
                    pending.pop(key, None)
                    finish(key, discard=True)
                    rec["error"] = reason
                    self.add(rec, None)
                    done["failed"] += 1
                    on_done()
            batcher.flush()
        finally:
            stop.set()
        return done["ok"], done["failed"]


def _save_frames(path: Path, fr) -> None:
    with open(path, "wb") as f:
        np.savez(f, embeddings=fr.embeddings, timestamps=fr.timestamps)


def _check_info(out: Path, model: EmbeddingModel, normalize: bool, layer: Layer, root: Path, new_root: bool) -> None:
    """Create OUT/info.json, or check that OUT was written by this model, with these settings, from ``root``."""
    want = {"model": model.name, "model_id": model.folder.identity,
            "model_sha256": model.folder.config["files"].get("model.onnx"),
            "embedding_dim": model.embedding_dim, "normalize": normalize, "layer": layer}
    p = out / "info.json"
    if out.exists() and not out.is_dir():
        raise EmbedError(f"{out} exists and is not a folder; choose another output folder")
    if not p.exists() and out.is_dir() and any(x.name != "parts" for x in out.iterdir()):
        raise EmbedError(f"{out} is a folder with other files and no info.json: not an `audioemb embed` output; "
                         "choose an empty or new output folder")
    root_s = str(root.resolve())
    if p.exists():
        try:
            have = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise EmbedError(f"{p}: not valid JSON ({e.msg}); the folder is damaged") from None
        keys = [k for k in want if k in have or k != "model_id"]  # outputs of older versions have no model_id
        diff = [k for k in keys if have.get(k) != want[k]]
        if diff:
            raise EmbedError(f"{out} was written with {', '.join(f'{k}={have.get(k)!r}' for k in diff)}; "
                             f"this run has {', '.join(f'{k}={want[k]!r}' for k in diff)}. Use another output folder.")
        if have.get("root") not in (None, root_s) and not new_root:
            raise EmbedError(f"{out} holds the embeddings of {have['root']}, not {root_s}; files of the other folder "
                             "would be removed. Use another output folder, or --new-root (new_root=True) to make "
                             f"{root_s} its folder.")
        if have.get("root") != root_s or "model_id" not in have:
            atomic_write(p, lambda q: q.write_text(json.dumps({**have, **want, "root": root_s}, indent=1)))
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(p, lambda q: q.write_text(json.dumps({**want, "root": root_s, "audioemb_version": __version__},
                                                          indent=1)))


def embed_folder(root: str | os.PathLike, out: str | os.PathLike, model: str | EmbeddingModel | None = None,
                 batch_size: int = 32, workers: int = 2, frames: bool = False, layer: Layer = None,
                 normalize: bool = True, progress: bool = True, flush_every: int = 256,
                 flush_seconds: float = 30.0, log: Callable[[str], None] | None = None, prune: bool = False,
                 new_root: bool = False) -> EmbedSummary:
    """Embed every audio file under ``root`` into ``out`` (see the module docstring for the layout).

    Bad files (empty, truncated, not audio, all-NaN, unreadable, a non-finite embedding) are recorded with
    their error and the run goes on; files embedded despite a problem (zeroed NaN samples, a truncated
    file) carry a ``warning``. Files gone from ``root`` are removed only when at most ``PRUNE_FREE`` are
    gone or ``prune`` is set, and never those under a folder that could not be listed. ``out`` records
    ``root``; another folder is refused unless ``new_root``. Returns the counts.
    """
    t0 = time.time()
    root, out = Path(root), Path(out)
    m = model if isinstance(model, EmbeddingModel) else load(model)
    m.check_layer(layer)
    paths, unreadable = scan_audio(root)
    _check_info(out, m, normalize, layer, root, new_root)
    recover(out)
    files = []
    for p in paths:
        rel = rel_path(p, root)
        try:
            files.append((p, rel, p.stat()))
        except OSError:
            files.append((p, rel, os.stat_result((0,) * 10)))
    _, old = read_embeddings(out)
    known = {r["path"]: r for r in old}
    todo, kept = [], 0
    for key, (p, rel, st) in enumerate(files):
        r = known.get(rel)
        if (r and r.get("error") is None and r.get("size") == st.st_size and r.get("mtime_ns") == st.st_mtime_ns
                and (not frames or r.get("frames"))):
            kept += 1
        else:
            todo.append((key, p, rel, st))
    present = {rel for _, rel, _ in files}
    shielded = [d for d, _ in unreadable]
    gone = [r["path"] for r in old if r["path"] not in present and not any(under(r["path"], d) for d in shielded)]
    drop = set(gone) if prune or len(gone) <= PRUNE_FREE else set()
    job = _Job(m, root, out, batch_size, workers, frames, layer, normalize, flush_every, flush_seconds)
    ok = 0
    try:
        if todo:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          disable=not progress, transient=True) as bar:
                task = bar.add_task("files", total=len(todo))
                ok, _ = job.run(todo, lambda: bar.advance(task))
    finally:
        job.flush()
        removed = merge(out, lambda rel: rel not in drop)
    _, recs = read_embeddings(out)
    failed_total = sum(1 for r in recs if r.get("error"))
    warned = sum(1 for r in recs if r.get("warning") and r.get("path") in present)
    summary = EmbedSummary(len(files), ok, kept, failed_total, removed, time.time() - t0, out,
                           gone_kept=len(gone) - len(drop), unreadable=unreadable, warned=warned)
    if log:
        log(summary.line())
    return summary
