"""``embed_folder``: embed every audio file under a folder into OUT, resumably and crash-safely.

OUT holds::

    embeddings.npy       (N, D) float32, one row per embedded file
    manifest.jsonl       one JSON object per input file: path (relative to the folder), row (or null),
                         duration_s, sample_rate, channels, error (null or a message), size, mtime_ns
                         [, warning: what was wrong but still embedded (zeroed NaN samples, truncation)]
                         [, frames: "frames/<id>.npz" with embeddings (T, F) and timestamps (T,)]
    info.json            the model (name, identity, how to load it: model_ref), settings and folder (root)
                         OUT was written with
    parts/               work not yet merged into embeddings.npy (only after an interrupted run)

Progress is written to ``parts/`` atomically every few hundred files; ``embeddings.npy`` and
``manifest.jsonl`` are replaced only at the end of a run, through a journal committed by ``merge.json``
(see :mod:`audioemb._embed_store`), so a run killed at any moment leaves OUT readable, and the next run
finishes the job with nothing lost and nothing doubled. Files whose size and modification time are
unchanged are kept; new, changed and previously failed files are (re-)embedded; files gone from the
folder are dropped only when few are gone (``PRUNE_FREE``) or ``prune`` is set.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from ._embed_store import SHARDS, EmbedError, iter_records, merge, read_embeddings, recover, write_jsonl
from .audio import printable
from .fsio import atomic_write, save_npy
from .registry import model_ref
from .runtime import EmbeddingModel, Layer, load
from .scan import FileEntry, Spool, plan, scan_folder
from .stream import lanes_possible

__all__ = ["EmbedError", "EmbedSummary", "embed_folder", "iter_records", "read_embeddings"]
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
    links: list = field(default_factory=list)  # symlinked folders, not followed

    def line(self) -> str:
        s = (f"embedded {self.embedded} files, kept {self.kept}, failed {self.failed}, removed {self.removed} "
             f"({self.total} in the folder, {self.seconds:.1f} s) -> {self.out}")
        if self.warned:
            s += f"; {self.warned} embedded with warnings (see manifest.jsonl)"
        return s + kept_notes(self.gone_kept, self.unreadable, self.links)


def kept_notes(gone_kept: int, unreadable: list, links: list[str]) -> str:
    """A summary line's notes on what a folder scan kept or passed over ('' when nothing): files gone from
    the folder but kept, folders that could not be listed, symlinked folders not followed."""
    s = ""
    if gone_kept:
        s += f"; {gone_kept} files no longer in the folder were kept: use --prune (prune=True) to remove them"
    if unreadable:
        s += f"; {len(unreadable)} folders could not be read, their files were kept"
    return s + links_note(links)


def links_note(links: list[str]) -> str:
    """The summary's note on symlinked folders a scan did not follow ('' when none)."""
    if not links:
        return ""
    shown = ", ".join(f"{printable(d)}/" for d in links[:3]) + (" ..." if len(links) > 3 else "")
    return (f"; {len(links)} symlinked folders not followed ({shown}): give each as a folder of its own, or "
            "copy it in")


def _frames_name(rel: str) -> str:
    return "frames/" + hashlib.sha1(rel.encode("utf-8", "surrogateescape")).hexdigest()[:20] + ".npz"


class _Job:
    """One run's output: records and embeddings go to ``parts/`` every ``flush_every`` files or
    ``flush_seconds``, each part written atomically."""

    def __init__(self, out: Path, dim: int, flush_every: int, flush_seconds: float):
        self.out, self.dim, self.flush_every, self.flush_seconds = out, dim, flush_every, flush_seconds
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
        emb = np.stack(self.part_embs) if self.part_embs else np.zeros((0, self.dim), np.float32)
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


def _record(e: FileEntry, r) -> dict:
    """The manifest record of one encoded file (its row is set when the part is written)."""
    rec = {"path": e.rel, "row": None, "duration_s": None, "sample_rate": None, "channels": None, "error": None,
           "size": e.size, "mtime_ns": e.mtime_ns}
    if r.header is not None:
        rec.update(sample_rate=r.header.sample_rate, channels=r.header.channels,
                   duration_s=round(r.header.duration_s, 4))
    if r.duration_s is not None:
        rec["duration_s"] = r.duration_s
    rec["error"] = r.error
    if r.warning and not r.error:
        rec["warning"] = r.warning
    return rec


def balanced(workers: int | None, lanes: bool = False) -> tuple[int, int]:
    """(decoder processes, onnxruntime threads of the main process) for this machine.

    With ``lanes`` each decoder process also runs the model on one onnxruntime thread of its own
    (:func:`audioemb.stream.encode_stream`), one per core: a small model gains little from more threads
    (on 2 cores two one-thread sessions beat one two-thread session, 3.55 s to 4.04 s; on 16 cores 11
    threads were as fast as 16; docs/benchmarks.md). The main process's threads then only serve the first
    files, while the lanes start. ``workers=None`` without lanes: with more than 2 cores, a fifth of them
    (at least one) decode, one is left to the main thread (which batches the windows while the model runs
    in a thread of its own, ``stream.MODEL_AHEAD``), and onnxruntime gets the rest (16 cores: 3 + 12 took
    4.0 s against 3.2 s for the model alone; docs/gpu.md); with 1 or 2 cores, decoding runs in the main
    thread between batches and onnxruntime keeps every core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if lanes:
        return (cores if cores > 1 else 0) if workers is None else max(0, workers), cores
    if workers is not None:
        return max(0, workers), max(1, cores - max(0, workers))
    if cores <= 2:
        return 0, cores
    w = max(1, cores // 5)
    return w, max(1, cores - w - 1)


def job_layout(m: EmbeddingModel, workers: int | None, lanes: bool | None) -> tuple[int, bool]:
    """(decoder processes, lanes) for embedding with ``m``: lanes unless refused (``lanes=False``) or ``m`` cannot
    run in them (a GPU or torch model), with the decoders :func:`balanced` gives either way."""
    lanes = lanes is not False and lanes_possible(m)
    return balanced(workers, lanes)[0], lanes


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
    root_s, ref = str(root.resolve()), model_ref(model)  # ref: how `index --from` loads the model again
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
        if have.get("root") != root_s or "model_id" not in have or have.get("model_ref") != ref:
            atomic_write(p, json.dumps({**have, **want, "model_ref": ref, "root": root_s}, indent=1))
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(p, json.dumps({**want, "model_ref": ref, "root": root_s, "audioemb_version": __version__},
                                   indent=1))


def embed_folder(root: str | os.PathLike, out: str | os.PathLike, model: str | EmbeddingModel | None = None,
                 batch_size: int = 32, workers: int | None = None, frames: bool = False, layer: Layer = None,
                 normalize: bool = True, progress: bool = True, flush_every: int = 256,
                 flush_seconds: float = 30.0, log: Callable[[str], None] | None = None, prune: bool = False,
                 new_root: bool = False, device: str = "auto", lanes: bool | None = None) -> EmbedSummary:
    """Embed every audio file under ``root`` into ``out`` (see the module docstring for the layout).

    Decoding runs in ``workers`` processes beside the model (None: :func:`balanced` picks; 0: in this
    process); with ``lanes`` (None: when the model runs on onnxruntime's CPU provider) each of them runs
    the model too, on one thread. A model given by name is loaded with the threads :func:`balanced` gives.
    Bad files (empty, truncated, not audio, all-NaN, unreadable, a non-finite embedding) are recorded with
    their error and the run goes on; files embedded despite a problem (zeroed NaN samples, a truncated
    file) carry a ``warning``. Files gone from ``root`` are removed only when at most ``PRUNE_FREE`` are
    gone or ``prune`` is set, and never those under a folder that could not be listed. ``out`` records
    ``root``; another folder is refused unless ``new_root``. Memory does not grow with the number of
    files. Returns the counts.
    """
    t0 = time.time()
    root, out = Path(root), Path(out)
    threads = balanced(workers, lanes is not False and (lanes or device in ("auto", "cpu")))[1]
    m = model if isinstance(model, EmbeddingModel) else load(model, threads=threads, device=device)
    n_workers, lanes = job_layout(m, workers, lanes)
    m.check_layer(layer)
    if (out / SHARDS).exists():
        raise EmbedError(f"{out} holds a Ray job's shards (shards.json); run with --ray (embed_folder_ray) again, or "
                         "use another output folder")
    with contextlib.ExitStack() as stack:
        scan = stack.enter_context(scan_folder(root))
        if not len(scan) and not scan.unreadable and not (out / "info.json").exists():  # a wrong path, most likely
            raise EmbedError(f"{root}: no audio files in this folder (recursively){links_note(scan.links)}")
        _check_info(out, m, normalize, layer, root, new_root)
        stack.enter_context(_exclusive(out))
        recover(out)
        if (out / "parts").is_dir():
            merge(out)  # fold in what an interrupted run saved
        p = plan(scan, iter_records(out) if (out / "info.json").exists() else (), need_frames=frames)
        stack.callback(p.close)
        todo, gone, kept = p.todo, p.gone, p.kept
        drop = prune or len(gone) <= PRUNE_FREE
        job = _Job(out, m.embedding_dim, flush_every, flush_seconds)
        ok = 0
        try:
            if len(todo):
                ok = _run(m, todo, root, job, batch_size, n_workers, frames, layer, normalize, progress, lanes)
        finally:
            job.flush()
            stats = merge(out, iter(gone), drop_gone=drop)
        summary = EmbedSummary(len(scan), ok, kept, stats.failed, stats.removed, time.time() - t0, out,
                               gone_kept=0 if drop else len(gone), unreadable=scan.unreadable, warned=stats.warned,
                               links=scan.links)
    if log:
        log(summary.line())
    return summary


@contextlib.contextmanager
def _exclusive(out: Path):
    """Hold ``out`` for this run (an flock on the folder itself, so no lock file is left in it): a second run
    into the same folder stops at once instead of redoing the same files beside the first."""
    import fcntl

    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise EmbedError(f"{out} is being written by another `audioemb embed` run: wait for it to finish (a re-run "
                         "then embeds only what is left), or use another output folder") from None
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


def _run(m: EmbeddingModel, todo: Spool, root: Path, job: _Job, batch_size: int, workers: int, frames: bool,
         layer: Layer, normalize: bool, progress: bool, lanes: bool = False) -> int:
    """Embed the files of ``todo`` into ``job``'s parts, in path order; returns how many were embedded."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    entries = (FileEntry(root / rel if root.is_dir() else root, rel, size, mtime) for rel, size, mtime in todo)
    ok = 0
    with Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress, transient=True) as bar, \
            contextlib.closing(m.encode_stream(((e, e.path) for e in entries), batch_size=batch_size,
                                               normalize=normalize, layer=layer, frames=frames, workers=workers,
                                               ordered=True, lanes=lanes)) as results:
        task = bar.add_task("files", total=len(todo))
        for r in results:
            rec = _record(r.key, r)
            if r.frames is not None:
                name = _frames_name(rec["path"])
                (job.out / "frames").mkdir(exist_ok=True)
                atomic_write(job.out / name, lambda p, fr=r.frames: _save_frames(p, fr))
                rec["frames"] = name
            job.add(rec, r.clip)
            ok += r.error is None
            bar.advance(task)
    return ok
