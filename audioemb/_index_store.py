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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "audioemb-index"
CURRENT = "current.json"
ALIASES = {"faiss": "index.faiss", "vectors": "vectors.npy", "meta": "meta.sqlite"}
_VERSIONED = re.compile(r"^(index|vectors|meta)\.\d{6}\.(faiss|npy|sqlite)$")


class IndexStoreError(Exception):
    """A folder that is not a usable index, or an index that cannot be written as asked."""


@dataclass
class Meta:
    """Everything meta.sqlite holds, in memory: info, files, and one entry per live vector."""

    info: dict
    files: list[dict] = field(default_factory=list)  # path, size, mtime_ns, duration_s, error
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # faiss id = row in vectors.npy
    file_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # index into files
    start: np.ndarray = field(default_factory=lambda: np.zeros(0))
    end: np.ndarray = field(default_factory=lambda: np.zeros(0))


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
        con.executemany("INSERT INTO segments VALUES (?, ?, ?, ?, ?)",
                        zip(meta.rows.tolist(), meta.file_of.tolist(), meta.start.tolist(), meta.end.tolist(),
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
        seg = con.execute("SELECT row, file_id, start_s, end_s FROM segments ORDER BY row").fetchall()
    finally:
        con.close()
    pos = {f.pop("id"): i for i, f in enumerate(files)}
    a = np.array(seg, dtype=np.float64).reshape(-1, 4)
    return Meta(info, files, a[:, 0].astype(np.int64), np.array([pos[int(i)] for i in a[:, 1]], np.int64),
                 a[:, 2].copy(), a[:, 3].copy())


# ---------------------------------------------------------------------------------------------------- storage
def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic(final: Path, write: Callable[[Path], None]) -> str:
    tmp = final.with_name(final.name + ".tmp")
    tmp.unlink(missing_ok=True)
    write(tmp)
    _fsync(tmp)
    os.replace(tmp, final)
    return final.name


def read_current(folder: Path) -> dict:
    try:
        cur = json.loads((folder / CURRENT).read_text())
    except FileNotFoundError:
        raise IndexStoreError(f"{folder}: not an audioemb index (no {CURRENT})") from None
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
        stem, ext = {"faiss": ("index", "faiss"), "vectors": ("vectors", "npy"), "meta": ("meta", "sqlite")}[kind]
        return self.folder / f"{stem}.{self.v:06d}.{ext}"

    def write_vectors(self, parts: list[np.ndarray]) -> np.ndarray:
        """Write the concatenation of ``parts`` (arrays or memory maps) in chunks; return it memory-mapped."""
        n, d = sum(len(p) for p in parts), parts[0].shape[1]

        def write(tmp: Path) -> None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
            at = 0
            for p in parts:
                for s in range(0, len(p), 65536):
                    chunk = np.asarray(p[s:s + 65536], dtype=np.float32)
                    out[at:at + len(chunk)] = chunk
                    at += len(chunk)
            out.flush()
            del out

        self.files["vectors"] = _atomic(self.path("vectors"), write)
        return np.load(self.folder / self.files["vectors"], mmap_mode="r")

    def reuse_vectors(self) -> None:
        self.files["vectors"] = self.cur["files"]["vectors"]

    def commit(self, meta: Meta, index) -> dict:
        import faiss

        self.files["faiss"] = _atomic(self.path("faiss"), lambda p: faiss.write_index(index, str(p)))
        self.files["meta"] = _atomic(self.path("meta"), lambda p: write_sqlite(p, meta))
        new = {"format": FORMAT, "version": self.v, "files": self.files,
               "previous": self.cur["files"] if self.cur else None}
        _atomic(self.folder / CURRENT, lambda p: p.write_text(json.dumps(new, indent=1)))
        _fsync(self.folder)
        for kind, alias in ALIASES.items():  # convenience hard links; the truth is current.json
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
    import faiss

    for attempt in range(tries):
        cur = read_current(folder)
        paths = {k: folder / v for k, v in cur["files"].items()}
        if all(p.exists() for p in paths.values()):
            try:
                return (cur, read_sqlite(paths["meta"]), faiss.read_index(str(paths["faiss"])),
                        np.load(paths["vectors"], mmap_mode="r"))
            except (OSError, RuntimeError, sqlite3.Error):
                if attempt == tries - 1:
                    raise
        elif attempt == tries - 1:
            raise IndexStoreError(f"{folder}: files named by {CURRENT} are missing: "
                                  f"{', '.join(str(p.name) for p in paths.values() if not p.exists())}")
        time.sleep(0.05 * (attempt + 1))  # a writer replaced the version under us: read current.json again
    raise AssertionError("unreachable")
