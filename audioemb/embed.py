"""``embed_folder``: embed every audio file under a folder into OUT, resumably and crash-safely.

OUT holds::

    embeddings.npy       (N, D) float32, one row per embedded file
    manifest.jsonl       one JSON object per input file: path (relative to the folder), row (or null),
                         duration_s, sample_rate, channels, error (null or a message), size, mtime_ns
                         [, frames: "frames/<id>.npz" with embeddings (T, F) and timestamps (T,)]
    info.json            the model and settings OUT was written with
    parts/               work not yet merged into embeddings.npy (only after an interrupted run)

Progress is written to ``parts/`` atomically every few hundred files; ``embeddings.npy`` and
``manifest.jsonl`` are replaced only at the end of a run, through a journal (``manifest.jsonl.next``),
so a run killed at any moment leaves OUT readable, and the next run finishes the job with nothing lost
and nothing doubled. Files whose size and modification time are unchanged are kept; new, changed and
previously failed files are (re-)embedded; files gone from the folder are dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .audio import AudioError, find_audio, info
from .runtime import Batcher, EmbeddingModel, Layer, Window, load


class EmbedError(Exception):
    """OUT cannot be used for this run (written by another model or with other settings)."""


@dataclass
class EmbedSummary:
    total: int
    embedded: int
    kept: int
    failed: int
    removed: int
    seconds: float
    out: Path

    def line(self) -> str:
        return (f"embedded {self.embedded} files, kept {self.kept}, failed {self.failed}, removed {self.removed} "
                f"({self.total} in the folder, {self.seconds:.1f} s) -> {self.out}")


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _n_rows(path: Path) -> int:
    return int(np.load(path, mmap_mode="r").shape[0]) if path.exists() else 0


def _recover(out: Path) -> None:
    """Finish or undo a merge that was interrupted between its two renames."""
    nxt = out / "manifest.jsonl.next"
    if nxt.exists():
        rows = [r for r in _read_jsonl(nxt) if r.get("row") is not None]
        if len(rows) == _n_rows(out / "embeddings.npy"):
            os.replace(nxt, out / "manifest.jsonl")
        else:
            nxt.unlink()


def read_embeddings(out: str | os.PathLike) -> tuple[np.ndarray, list[dict]]:
    """Embeddings and manifest records of an ``embed`` output, including unmerged progress in ``parts/``.

    Records without an embedding (failed files) have ``row: None``. Rows index the returned array.
    """
    out = Path(out)
    manifest = out / "manifest.jsonl"
    recs: dict[str, dict] = {}
    arrays: list[np.ndarray] = []
    nxt = out / "manifest.jsonl.next"
    if nxt.exists() and len([r for r in _read_jsonl(nxt) if r.get("row") is not None]) == _n_rows(
            out / "embeddings.npy"):
        manifest = nxt
    if manifest.exists():
        base = np.load(out / "embeddings.npy", mmap_mode="r") if (out / "embeddings.npy").exists() else None
        for r in _read_jsonl(manifest):
            recs[r["path"]] = dict(r, _src=(0, r["row"]))
        arrays.append(base if base is not None else np.zeros((0, 0), np.float32))
    else:
        arrays.append(np.zeros((0, 0), np.float32))
    for k, (emb, part_recs) in enumerate(_parts(out), start=1):
        arrays.append(emb)
        for r in part_recs:
            recs[r["path"]] = dict(r, _src=(k, r["row"]))
    rows, records = [], []
    for path in sorted(recs):
        r = recs[path]
        src, idx = r.pop("_src")
        if idx is not None:
            r["row"] = len(rows)
            rows.append(np.asarray(arrays[src][idx], dtype=np.float32))
        records.append(r)
    dim = next((a.shape[1] for a in arrays if a.ndim == 2 and a.shape[1]), 0)
    emb = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
    return emb, records


def _parts(out: Path) -> list[tuple[np.ndarray, list[dict]]]:
    parts = out / "parts"
    if not parts.is_dir():
        return []
    found = []
    for j in sorted(parts.glob("part-*.jsonl")):
        npy = j.with_suffix(".npy")
        if npy.exists():
            found.append((np.load(npy), _read_jsonl(j)))
    return found


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
        _atomic_write(stem.with_suffix(".npy"), lambda p: np.save(open(p, "wb"), emb))
        _atomic_write(stem.with_suffix(".jsonl"), lambda p: _write_jsonl(p, self.part_recs))
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
            if fr is not None:
                name = _frames_name(rec["path"])
                (self.out / "frames").mkdir(exist_ok=True)
                _atomic_write(self.out / name, lambda p: np.savez(open(p, "wb"), embeddings=fr.embeddings,
                                                                  timestamps=fr.timestamps))
                rec["frames"] = name
            del pending[key]
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
                    for w in model.window_stream(path, key):
                        q.put(("window", key, w))
                        n += 1
                        valid += w.valid
                        if stop.is_set():
                            return
                    q.put(("end", key, (n, valid)))
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
                    pending[key] = {"rec": payload, "windows": None, "seen": 0, "valid": 0}
                elif kind == "window":
                    batcher.add(payload)
                elif kind == "end":
                    pending[key]["windows"], pending[key]["valid"] = payload
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


def _check_info(out: Path, model: EmbeddingModel, normalize: bool, layer: Layer) -> None:
    want = {"model": model.name, "model_sha256": model.folder.config["files"].get("model.onnx"),
            "embedding_dim": model.embedding_dim, "normalize": normalize, "layer": layer}
    p = out / "info.json"
    if p.exists():
        have = json.loads(p.read_text())
        diff = [k for k in want if have.get(k) != want[k]]
        if diff:
            raise EmbedError(f"{out} was written with {', '.join(f'{k}={have.get(k)!r}' for k in diff)}; "
                             f"this run has {', '.join(f'{k}={want[k]!r}' for k in diff)}. Use another output folder.")
    else:
        out.mkdir(parents=True, exist_ok=True)
        _atomic_write(p, lambda q: q.write_text(json.dumps({**want, "audioemb_version": __version__}, indent=1)))


def _merge(out: Path, files: list[tuple[str, os.stat_result]]) -> int:
    """Rewrite embeddings.npy + manifest.jsonl from the old merge and parts; drop vanished files."""
    emb, records = read_embeddings(out)
    present = {rel for rel, _ in files}
    keep = [r for r in records if r["path"] in present]
    removed = len(records) - len(keep)
    rows = [r["row"] for r in keep if r["row"] is not None]
    dim = emb.shape[1] if emb.ndim == 2 else 0
    new = np.zeros((len(rows), dim), np.float32)
    for i, r in enumerate(r for r in keep if r["row"] is not None):
        new[i] = emb[r["row"]]
        r["row"] = i
    _atomic_write(out / "embeddings.npy.part", lambda p: np.save(open(p, "wb"), new))
    _write_jsonl(out / "manifest.jsonl.next", keep)
    os.replace(out / "embeddings.npy.part", out / "embeddings.npy")
    os.replace(out / "manifest.jsonl.next", out / "manifest.jsonl")
    parts = out / "parts"
    if parts.is_dir():
        for p in parts.iterdir():
            p.unlink()
        parts.rmdir()
    frames = out / "frames"
    if frames.is_dir():
        live = {r["frames"].split("/", 1)[1] for r in keep if r.get("frames")}
        for p in frames.iterdir():
            if p.name not in live:
                p.unlink()
    return removed


def embed_folder(root: str | os.PathLike, out: str | os.PathLike, model: str | EmbeddingModel | None = None,
                 batch_size: int = 32, workers: int = 2, frames: bool = False, layer: Layer = None,
                 normalize: bool = True, progress: bool = True, flush_every: int = 256,
                 flush_seconds: float = 30.0, log: Callable[[str], None] | None = None) -> EmbedSummary:
    """Embed every audio file under ``root`` into ``out`` (see the module docstring for the layout).

    Bad files (empty, truncated, not audio, all-NaN, unreadable) are recorded with their error and the
    run goes on. Returns counts of embedded, kept, failed and removed files.
    """
    t0 = time.time()
    root, out = Path(root), Path(out)
    m = model if isinstance(model, EmbeddingModel) else load(model)
    _check_info(out, m, normalize, layer)
    _recover(out)
    paths = find_audio(root)
    files = []
    for p in paths:
        rel = p.relative_to(root).as_posix() if root.is_dir() else p.name
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
        removed = _merge(out, [(rel, st) for _, rel, st in files])
    failed_total = sum(1 for r in read_embeddings(out)[1] if r.get("error"))
    summary = EmbedSummary(len(files), ok, kept, failed_total, removed, time.time() - t0, out)
    if log:
        log(summary.line())
    return summary
