"""On-disk storage of an ``audioemb embed`` output folder: parts, the merge journal, and reading it back.

A merge rewrites ``embeddings.npy`` and ``manifest.jsonl`` from the previous merge and ``parts/``:

1. ``embeddings.npy.part`` and ``manifest.jsonl.next`` are written (each through a temporary name, fsynced,
   with :func:`audioemb.fsio.atomic_write`);
2. ``merge.json`` is written atomically: the commit point. It records the journal's record and row
   counts and the sha256 of ``manifest.jsonl.next``;
3. the two files are renamed over ``embeddings.npy`` and ``manifest.jsonl``, ``parts/`` is emptied, and
   ``merge.json`` is removed.

A run killed before step 2 leaves a journal without a valid ``merge.json``: it is discarded (the old
files and ``parts/`` are untouched). Killed after step 2, the journal is rolled forward by the next
writer, and readers read the committed journal in the meantime. A journal left by an older audioemb
(no ``merge.json``) is rolled forward only if every line parses and its rows match ``embeddings.npy``.

The merge is a stream: ``manifest.jsonl`` is sorted by path, and so is a run's sequence of parts, so the
two are merged like sorted lists, each row copied once, with no per-file state held in memory.
A Ray job's output (:mod:`audioemb.ray_embed`) is read here too: ``shards.json`` lists its shards.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AudioembError
from .fsio import atomic_write

NEXT, PART, COMMIT, SHARDS = "manifest.jsonl.next", "embeddings.npy.part", "merge.json", "shards.json"
_HEADER = 128  # bytes reserved for the .npy header of a merged embeddings file (its row count comes last)


class EmbedError(AudioembError):
    """OUT cannot be used for this run (written by another model, from another folder, or not an output)."""


def is_embed_output(folder: Path) -> bool:
    """Whether ``folder`` looks like an ``audioemb embed`` output (its info.json names the model)."""
    try:
        return "model" in json.loads((folder / "info.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=True) + "\n")


def iter_jsonl(path: Path) -> Iterator[dict]:
    """Records of a JSONL file, one at a time; a line that does not parse is an :class:`EmbedError`."""
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise EmbedError(f"{path}: line {n} is not valid JSON ({e.msg}); the file is damaged") from None


def read_jsonl(path: Path) -> list[dict]:
    return list(iter_jsonl(path))


def _n_rows(path: Path) -> int | None:
    try:
        return int(np.load(path, mmap_mode="r").shape[0])
    except (OSError, ValueError):
        return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def _journal(out: Path) -> str:
    """State of the merge journal: "none" | "committed" | "legacy" | "incomplete"."""
    nxt, commit = out / NEXT, out / COMMIT
    if commit.exists():
        try:
            c = json.loads(commit.read_text())
        except (OSError, json.JSONDecodeError):
            c = None
        if c is not None and (not nxt.exists() or _sha256(nxt) == c.get("manifest_sha256")):
            return "committed"  # (without NEXT: renames done, only the clean-up is left)
        return "incomplete"
    if not nxt.exists():
        return "none"
    try:
        rows = sum(r.get("row") is not None for r in iter_jsonl(nxt))
    except EmbedError:
        return "incomplete"
    return "legacy" if not (out / PART).exists() and rows == _n_rows(out / "embeddings.npy") else "incomplete"


def recover(out: Path) -> str:
    """Finish a committed merge or discard an incomplete one (writers only); returns what was done."""
    state = _journal(out)
    for tmp in [*out.glob(".*.tmp"), *(out / "parts").glob(".*.tmp")] if out.is_dir() else []:
        tmp.unlink(missing_ok=True)  # what a killed writer left half-written
    if state in ("committed", "legacy"):
        if (out / PART).exists():
            os.replace(out / PART, out / "embeddings.npy")
        if (out / NEXT).exists():
            os.replace(out / NEXT, out / "manifest.jsonl")
        if state == "committed":
            _clear_parts(out)
            (out / COMMIT).unlink()
        return "rolled forward"
    for name in (NEXT, PART, COMMIT):
        (out / name).unlink(missing_ok=True)
    return "discarded" if state == "incomplete" else "none"


def _clear_parts(out: Path) -> None:
    parts = out / "parts"
    if parts.is_dir():
        for p in parts.iterdir():
            p.unlink()
        parts.rmdir()


# ------------------------------------------------------------------------------------------------ reading
Entry = tuple[dict, np.ndarray, int]  # a record, the array holding its embedding and its row there (if any)


def _base(out: Path) -> Iterator[Entry]:
    """The last merge's records in path order (a committed journal counts as merged)."""
    state = _journal(out)
    done = state in ("committed", "legacy")
    man = out / NEXT if done and (out / NEXT).exists() else out / "manifest.jsonl"
    emb_path = out / PART if done and (out / PART).exists() else out / "embeddings.npy"
    if not man.exists():
        return
    emb = np.load(emb_path, mmap_mode="r") if emb_path.exists() else np.zeros((0, 0), np.float32)
    last = None
    for r in iter_jsonl(man):
        if last is not None and r["path"] <= last:
            raise EmbedError(f"{man}: not sorted by path at {r['path']!r}; the file is damaged")
        last = r["path"]
        yield r, emb, r.get("row")


def _parts(out: Path) -> Iterator[Entry]:
    """Unmerged progress (``parts/``) in path order; later parts replace earlier records of the same path."""
    parts = out / "parts"
    if _journal(out) == "committed" or not parts.is_dir():
        return  # a committed merge already holds the parts
    found = [(j, j.with_suffix(".npy")) for j in sorted(parts.glob("part-*.jsonl")) if j.with_suffix(".npy").exists()]
    if _increasing(r["path"] for j, _ in found for r in iter_jsonl(j)):  # one run's parts: a sorted stream
        for j, npy in found:
            emb = np.load(npy, mmap_mode="r")
            for r in iter_jsonl(j):
                yield r, emb, r.get("row")
        return
    latest: dict[str, Entry] = {}  # parts of an older audioemb, or of several runs: sort them in memory
    for j, npy in found:
        emb = np.load(npy)
        for r in iter_jsonl(j):
            latest[r["path"]] = (r, emb, r.get("row"))
    yield from (latest[p] for p in sorted(latest))


def _increasing(paths: Iterable[str]) -> bool:
    prev = None
    for p in paths:
        if prev is not None and p <= prev:
            return False
        prev = p
    return True


def _latest(a: Iterator[Entry], b: Iterator[Entry]) -> Iterator[tuple[Entry, Entry | None]]:
    """Merge two path-sorted streams; on the same path ``b``'s record wins. Yields (winner, replaced)."""
    tagged = heapq.merge(((e[0]["path"], 0, e) for e in a), ((e[0]["path"], 1, e) for e in b))
    prev = None
    for path, _, e in tagged:
        if prev is not None and prev[0]["path"] == path:
            yield e, prev
            prev = None
            continue
        if prev is not None:
            yield prev, None
        prev = e
    if prev is not None:
        yield prev, None


def entries(out: str | os.PathLike) -> Iterator[Entry]:
    """Every record of an embed output (local, or a Ray job's shards) with its embedding's array and row,
    in path order. Nothing is held per file."""
    out = Path(out)
    if (out / SHARDS).exists():  # each shard is sorted by path: merge them
        names = json.loads((out / SHARDS).read_text())["shards"]
        yield from heapq.merge(*(_shard(out, n) for n in names), key=lambda e: e[0]["path"])
        return
    for (r, emb, row), _ in _latest(_base(out), _parts(out)):
        yield r, emb, row


def _shard(out: Path, name: str) -> Iterator[Entry]:
    emb = np.load(out / (name + ".npy"), mmap_mode="r")
    for r in iter_jsonl(out / (name + ".jsonl")):
        yield r, emb, r.get("row")


def iter_records(out: str | os.PathLike) -> Iterator[dict]:
    """The manifest records of an embed output (local or Ray), one at a time, without their embeddings."""
    for r, _, _ in entries(out):
        yield r


def read_embeddings(out: str | os.PathLike) -> tuple[np.ndarray, list[dict]]:
    """Embeddings and manifest records of an ``embed`` output, including unmerged progress in ``parts/``,
    or of a Ray job's shards; sorted by path.

    Records without an embedding (failed files) have ``row: None``. Rows index the returned array. A merge
    that was committed but not finished is read as finished; an incomplete one is ignored.
    """
    rows, records, dim = [], [], 0
    for r, emb, row in entries(out):
        r = dict(r)
        dim = dim or (emb.shape[1] if emb.ndim == 2 else 0)
        if row is not None:
            r["row"] = len(rows)
            rows.append(np.asarray(emb[row], dtype=np.float32))
        records.append(r)
    return (np.stack(rows) if rows else np.zeros((0, dim), np.float32)), records


# ------------------------------------------------------------------------------------------------ merging
@dataclass
class MergeStats:
    records: int = 0
    rows: int = 0
    removed: int = 0
    failed: int = 0
    warned: int = 0  # of the records whose file is still in the folder


def _npy_header(rows: int, dim: int) -> bytes:
    """A version 1.0 .npy header for float32 (rows, dim), padded to ``_HEADER`` bytes."""
    d = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}"
    return b"\x93NUMPY\x01\x00" + (_HEADER - 10).to_bytes(2, "little") + (d.ljust(_HEADER - 11) + "\n").encode()


class _Sorted:
    """Membership of a path-sorted stream, queried in path order."""

    def __init__(self, paths: Iterable[str]):
        self._it, self._cur = iter(paths), None
        self._next()

    def _next(self) -> None:
        self._cur = next(self._it, None)

    def __contains__(self, path: str) -> bool:
        while self._cur is not None and self._cur < path:
            self._next()
        return self._cur == path


def merge(out: Path, gone: Iterable[str] = (), drop_gone: bool = False) -> MergeStats:
    """Rewrite embeddings.npy + manifest.jsonl from the old merge and the parts (see the module docstring).

    ``gone`` (path-sorted) are files no longer in the folder: removed when ``drop_gone``, else kept (and
    not counted as warned). Frames files of removed or replaced records are deleted after the commit.
    """
    gone_set, st, stale = _Sorted(gone), MergeStats(), []
    rows_tmp, recs_tmp = out / ".merge-rows.tmp", out / ".merge-recs.tmp"
    dim = 0
    with open(rows_tmp, "wb") as fr, open(recs_tmp, "w") as fm:
        fr.write(b"\0" * _HEADER)
        for (r, emb, row), replaced in _latest(_base(out), _parts(out)):
            if replaced is not None and replaced[0].get("frames") and replaced[0]["frames"] != r.get("frames"):
                stale.append(replaced[0]["frames"])
            dim = dim or (emb.shape[1] if emb.ndim == 2 else 0)
            is_gone = r["path"] in gone_set
            if is_gone and drop_gone:
                st.removed += 1
                if r.get("frames"):
                    stale.append(r["frames"])
                continue
            r = dict(r)
            if row is not None:
                v = np.asarray(emb[row], dtype="<f4")
                fr.write(v.tobytes())
                r["row"] = st.rows
                st.rows += 1
            fm.write(json.dumps(r, ensure_ascii=True) + "\n")
            st.records += 1
            st.failed += bool(r.get("error"))
            st.warned += bool(r.get("warning")) and not is_gone
        fr.seek(0)
        fr.write(_npy_header(st.rows, dim))
    atomic_write(out / PART, lambda p: os.rename(rows_tmp, p))
    atomic_write(out / NEXT, lambda p: os.rename(recs_tmp, p))
    commit = {"records": st.records, "rows": st.rows, "manifest_sha256": _sha256(out / NEXT)}
    atomic_write(out / COMMIT, json.dumps(commit))
    recover(out)
    _clean_frames(out, stale, st)
    return st


def _clean_frames(out: Path, stale: list[str], st: MergeStats) -> None:
    """Delete frames files no record points to (of removed records, and any a killed run left)."""
    frames = out / "frames"
    if not frames.is_dir():
        return
    for name in stale:
        (out / name).unlink(missing_ok=True)
    live = sum(1 for r in iter_jsonl(out / "manifest.jsonl") if r.get("frames"))
    if sum(1 for _ in frames.iterdir()) > live:  # rare: only after a killed run; then compare by name
        names = {r["frames"].split("/", 1)[1] for r in iter_jsonl(out / "manifest.jsonl") if r.get("frames")}
        for p in frames.iterdir():
            if p.name not in names:
                p.unlink()
