"""Versioned on-disk storage of an :class:`audioemb.index.Index` (layout and crash safety: see that module).

Each version's metadata is a SQLite file written from scratch and never modified; a version becomes current
when ``current.json`` is atomically replaced. Writers hold ``fcntl.flock`` on ``INDEX/.lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _faiss
from ._vectors import release
from .errors import AudioembError
from .fsio import atomic_write, fsync_path, open_memmap_allocated

FORMAT = "audioemb-index"
CURRENT = "current.json"
ALIASES = {"faiss": "index.faiss", "vectors": "vectors.npy", "meta": "meta.sqlite"}
_VERSIONED = re.compile(r"^(index|vectors|meta)\.\d{6}\.(faiss|npy|sqlite|ivfdata(\.shard\d+)?)$")
_NAMES = {"faiss": ("index", "faiss"), "vectors": ("vectors", "npy"), "meta": ("meta", "sqlite"),
          "ivfdata": ("index", "ivfdata")}
CHUNK = 100_000  # segment rows per SQLite batch: 10M rows never become 10M Python tuples at once


class IndexStoreError(AudioembError):
    """A folder that is not a usable index, or an index that cannot be written as asked."""


class ModelMismatchError(IndexStoreError, ValueError):
    """A model, query vector or embedding folder that does not match the index's model."""


@dataclass
class Meta:
    """Everything meta.sqlite holds, in memory: info, files, and one entry per live vector."""

    info: dict
    files: list[dict] = field(default_factory=list)  # path, size, mtime_ns, duration_s, error
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # faiss id = row in vectors.npy
    file_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # index into files
    start: np.ndarray = field(default_factory=lambda: np.zeros(0))
    end: np.ndarray = field(default_factory=lambda: np.zeros(0))


class Records(Sequence):
    """The {path, start, end[, row]} of every live vector, in row order, made when asked for: as a list of
    dicts, the records of 10^7 segments would take gigabytes."""

    def __init__(self, meta: Meta, row: bool = True):
        self._m, self._row = meta, row

    def __len__(self) -> int:
        return len(self._m.rows)

    def _one(self, r, f, a, b) -> dict:
        d = {"path": self._m.files[f]["path"], "start": float(a), "end": float(b)}
        return {**d, "row": int(r)} if self._row else d

    def __getitem__(self, i):
        m = self._m
        if isinstance(i, slice):
            return [self._one(*t) for t in zip(m.rows[i], m.file_of[i], m.start[i], m.end[i])]
        return self._one(m.rows[i], m.file_of[i], m.start[i], m.end[i])

    def __iter__(self) -> Iterator[dict]:
        for s in range(0, len(self), CHUNK):
            yield from self[s:s + CHUNK]


_SCHEMA = """
CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER, mtime_ns INTEGER,
                    duration_s REAL, error TEXT, warning TEXT);
CREATE TABLE segments (row INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id),
                       start_s REAL NOT NULL, end_s REAL NOT NULL, model TEXT NOT NULL);
CREATE INDEX segments_file ON segments(file_id);
CREATE VIEW vectors AS SELECT s.row, f.path, s.start_s, s.end_s, s.model
    FROM segments s JOIN files f ON f.id = s.file_id;
"""
FILE_COLS = ("path", "size", "mtime_ns", "duration_s", "error", "warning")


def write_sqlite(path: Path, meta: Meta) -> None:
    con = sqlite3.connect(path)
    try:
        con.executescript(_SCHEMA)
        con.executemany("INSERT INTO info VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.info.items()])
        con.executemany(f"INSERT INTO files VALUES (?, {', '.join('?' * len(FILE_COLS))})",
                        [(i, *(f.get(c) for c in FILE_COLS)) for i, f in enumerate(meta.files)])
        for s in range(0, len(meta.rows), CHUNK):
            con.executemany("INSERT INTO segments VALUES (?, ?, ?, ?, ?)",
                            zip(meta.rows[s:s + CHUNK].tolist(), meta.file_of[s:s + CHUNK].tolist(),
                                meta.start[s:s + CHUNK].tolist(), meta.end[s:s + CHUNK].tolist(),
                                itertools.repeat(meta.info["model"])))
        con.commit()
    finally:
        con.close()


def read_sqlite(path: Path) -> Meta:
    con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro&immutable=1", uri=True)
    try:
        info = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM info")}
        have = {r[1] for r in con.execute("PRAGMA table_info(files)")}  # indexes of older versions lack some
        cols = [c for c in FILE_COLS if c in have]
        cur = con.execute(f"SELECT id, {', '.join(cols)} FROM files ORDER BY id")
        files = [{**dict.fromkeys(FILE_COLS), **dict(zip(("id", *cols), r))} for r in cur]
        n = con.execute("SELECT count(*) FROM segments").fetchone()[0]
        rows, file_id, start, end = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n), np.empty(n)
        cur, at = con.execute("SELECT row, file_id, start_s, end_s FROM segments ORDER BY row"), 0
        while batch := cur.fetchmany(CHUNK):
            a = np.array(batch, dtype=np.float64).reshape(-1, 4)
            sl = slice(at, at + len(a))
            rows[sl], file_id[sl], start[sl], end[sl] = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
            at += len(a)
    finally:
        con.close()
    ids = np.array([f.pop("id") for f in files], np.int64)
    pos = np.full(int(ids.max()) + 1 if len(ids) else 1, -1, np.int64)
    pos[ids] = np.arange(len(ids))
    return Meta(info, files, rows, pos[file_id], start, end)


# ---------------------------------------------------------------------------------------------------- storage
def read_current(folder: Path) -> dict:
    try:
        cur = json.loads((folder / CURRENT).read_text())
    except FileNotFoundError:
        from ._embed_store import is_embed_output

        hint = (f"it is an `audioemb embed` output: build an index from it with `audioemb index build --from {folder} "
                "-o INDEX`" if is_embed_output(folder) else "build one with `audioemb index build`")
        raise IndexStoreError(f"{folder}: not an audioemb index (no {CURRENT}); {hint}") from None
    if cur.get("format") != FORMAT:
        raise IndexStoreError(f"{folder / CURRENT}: not an audioemb index manifest")
    return cur


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """The writer lock: fcntl.flock on INDEX/.lock (readers never take it)."""
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class Version:
    """The next version of an index folder, written file by file and committed by swapping current.json."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.cur = read_current(folder) if (folder / CURRENT).exists() else None
        self.v = (self.cur["version"] if self.cur else 0) + 1
        self.files: dict[str, str] = {}
        for p in folder.glob("*.tmp"):  # left by a writer that crashed (we hold the lock)
            p.unlink(missing_ok=True)

    def path(self, kind: str) -> Path:
        stem, ext = _NAMES[kind]
        return self.folder / f"{stem}.{self.v:06d}.{ext}"

    def write_vectors(self, parts: list, normalize: bool = False) -> np.ndarray:
        """Write the concatenation of ``parts`` (arrays, memory maps or anything with ``len``, ``shape`` and
        slices) in chunks, L2-normalised if asked; return it memory-mapped. Pages of memory maps are
        released as they are done, so this runs in bounded memory whatever the size."""
        n, d = sum(len(p) for p in parts), parts[0].shape[1]

        def write(tmp: Path) -> None:
            out = open_memmap_allocated(tmp, np.float32, (n, d))
            at = 0
            for p in parts:
                for s in range(0, len(p), 65536):
                    chunk = np.asarray(p[s:s + 65536], dtype=np.float32)
                    if normalize:
                        chunk = chunk / np.maximum(np.linalg.norm(chunk, axis=1, keepdims=True), 1e-12)
                    out[at:at + len(chunk)] = chunk
                    at += len(chunk)
                    out.flush()
                    release(out)
                    release(p)
            del out

        self.files["vectors"] = atomic_write(self.path("vectors"), write).name
        return np.load(self.folder / self.files["vectors"], mmap_mode="r")

    def reuse_vectors(self) -> None:
        self.files["vectors"] = self.cur["files"]["vectors"]

    def commit(self, meta: Meta, index, ivfdata: bool = False) -> dict:
        """Write the faiss index and the metadata, then make this version current. ``ivfdata``: the index's
        inverted lists were written to ``path("ivfdata")``, which belongs to this version."""
        if ivfdata:
            fsync_path(self.path("ivfdata"))
            self.files["ivfdata"] = self.path("ivfdata").name
        self.files["faiss"] = atomic_write(self.path("faiss"), lambda p: _faiss.write(index, str(p))).name
        self.files["meta"] = atomic_write(self.path("meta"), lambda p: write_sqlite(p, meta)).name
        new = {"format": FORMAT, "version": self.v, "files": self.files,
               "previous": self.cur["files"] if self.cur else None}
        atomic_write(self.folder / CURRENT, json.dumps(new, indent=1))
        for kind, alias in ALIASES.items():  # convenience hard links; the truth is current.json (an .ivfdata is
            # found by its own name beside index.faiss)
            with contextlib.suppress(OSError):
                tmp = self.folder / (alias + ".tmp")
                tmp.unlink(missing_ok=True)
                os.link(self.folder / self.files[kind], tmp)
                os.replace(tmp, self.folder / alias)
        keep = set(self.files.values()) | set((new["previous"] or {}).values())
        for p in self.folder.iterdir():
            if _VERSIONED.match(p.name) and p.name not in keep:
                p.unlink(missing_ok=True)
        return new


def open_version(folder: Path, tries: int = 5):
    """(manifest, meta, faiss index, vectors memory map) of the committed version."""
    for attempt in range(tries):
        cur = read_current(folder)
        paths = {k: folder / v for k, v in cur["files"].items()}
        if all(p.exists() for p in paths.values()):
            try:
                return (cur, read_sqlite(paths["meta"]), _faiss.read(str(paths["faiss"]), ondisk="ivfdata" in paths),
                        np.load(paths["vectors"], mmap_mode="r"))
            except (OSError, RuntimeError, sqlite3.Error):
                if attempt == tries - 1:
                    raise
        elif attempt == tries - 1:
            raise IndexStoreError(f"{folder}: files named by {CURRENT} are missing: "
                                  f"{', '.join(str(p.name) for p in paths.values() if not p.exists())}")
        time.sleep(0.05 * (attempt + 1))  # a writer replaced the version under us: read current.json again
    raise AssertionError("unreachable")
