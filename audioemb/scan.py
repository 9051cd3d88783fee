"""``scan_folder``: the audio files under a folder, listed once and in a stable order; and the one rule
that decides which files an ``embed`` output or an index must embed again.

Files are listed in the order of their paths relative to the folder (as strings, '/'-separated), the
order ``manifest.jsonl`` is written in, so an old manifest and a new listing are compared as two sorted
streams. The listing is spooled to a temporary file: memory does not grow with the number of files.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .audio import is_listed_audio, under


@dataclass(frozen=True)
class FileEntry:
    """One audio file: its path, its path relative to the scanned folder, its size and mtime (ns)."""

    path: Path
    rel: str
    size: int
    mtime_ns: int


def is_unchanged(rec: dict | None, entry: FileEntry, need_frames: bool = False) -> bool:
    """The one change rule: a file is kept when it was embedded without error and its size and
    modification time (ns) are the same (and, when frames are wanted, its frames were written)."""
    return bool(rec) and rec.get("error") is None and rec.get("size") == entry.size \
        and rec.get("mtime_ns") == entry.mtime_ns and (not need_frames or bool(rec.get("frames")))


class Spool:
    """Lines of JSON written once to a temporary file and read back any number of times, in order.

    The file is unlinked as soon as it is created (``tempfile.TemporaryFile``), so a job that is killed
    leaves nothing behind; readers use ``os.pread``, which leaves the writer's position alone.
    """

    def __init__(self, items: Iterable = ()):
        self._w = tempfile.TemporaryFile(prefix="audioemb-", suffix=".jsonl")
        self.count = 0
        for x in items:
            self.append(x)

    def append(self, x) -> None:
        self._w.write(json.dumps(x).encode() + b"\n")
        self.count += 1

    def __iter__(self) -> Iterator:
        self._w.flush()
        fd, end, off, rest = self._w.fileno(), self._w.tell(), 0, b""
        while off < end:
            chunk = os.pread(fd, min(1 << 20, end - off), off)
            off += len(chunk)
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                yield json.loads(line)

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        self._w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Scan:
    """The audio files under ``root`` (see :func:`scan_folder`): iterate for :class:`FileEntry` in order;
    ``len()`` files; ``unreadable`` is (folder relative to ``root``, reason) for folders that could not be
    listed, whose files must never be treated as gone; ``links`` the symlinked folders not followed."""

    def __init__(self, root: Path, spool: Spool, unreadable: list[tuple[str, str]], links: list[str] | None = None):
        self.root, self._spool, self.unreadable, self.links = root, spool, unreadable, links or []

    def __iter__(self) -> Iterator[FileEntry]:
        for rel, size, mtime in self._spool:
            yield FileEntry(self.root / rel if self.root.is_dir() else self.root, rel, size, mtime)

    def __len__(self) -> int:
        return len(self._spool)

    def shielded(self, rel: str) -> bool:
        """Whether ``rel`` lies under a folder that could not be listed."""
        return any(under(rel, d) for d, _ in self.unreadable)

    def close(self) -> None:
        self._spool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def scan_folder(root: str | os.PathLike) -> Scan:
    """Every file with an audio extension under ``root`` (recursively, following no symlinked folders, which
    the scan's ``links`` lists;
    :func:`~audioemb.audio.is_listed_audio`: also the formats only FFmpeg decodes, which fail with the way out
    when PyAV is missing), or
    ``root`` itself when it is a file; FileNotFoundError when it does not exist."""
    root = Path(root)
    unreadable: list[tuple[str, str]] = []
    spool = Spool()
    if root.is_file():
        st = _stat(root)
        spool.append([root.name, st[0], st[1]])
        return Scan(root, spool, unreadable)
    if not root.is_dir():
        spool.close()
        raise FileNotFoundError(f"{root}: no such file or folder")
    links: list[str] = []
    for rel, path in _walk(root, "", unreadable, links):
        size, mtime = _stat(path)
        spool.append([rel, size, mtime])
    return Scan(root, spool, sorted(unreadable), sorted(links))


def has_audio(root: str | os.PathLike) -> bool:
    """Whether the folder ``root`` holds an audio file anywhere below it, found as :func:`scan_folder` finds
    them; stops at the first."""
    return next(_walk(Path(root), "", []), None) is not None


def _walk(folder: Path, prefix: str, unreadable: list, links: list | None = None) -> Iterator[tuple[str, Path]]:
    """(relative path, path) of audio files in string order of the relative path: a folder's entries are
    sorted by name, a sub-folder's name compared as ``name/`` (what its files' paths start with). Symlinked
    folders are not followed (loops, files outside the folder); their relative paths go to ``links``."""
    try:
        with os.scandir(folder) as it:
            entries = []
            for e in it:
                try:
                    is_dir = e.is_dir()
                except OSError:
                    is_dir = False
                if is_dir and not e.is_symlink():
                    entries.append((e.name + "/", e))
                elif is_dir and links is not None:
                    links.append(prefix + e.name)
                elif not is_dir and is_listed_audio(e.name):
                    entries.append((e.name, e))
    except OSError as err:
        unreadable.append((prefix.rstrip("/") or ".", err.strerror or str(err)))
        return
    entries.sort(key=lambda t: t[0])
    for key, e in entries:
        if key.endswith("/"):
            yield from _walk(Path(e.path), prefix + key, unreadable, links)
        else:
            yield prefix + e.name, Path(e.path)


def _stat(p: Path) -> tuple[int, int]:
    try:
        st = p.stat()
        return st.st_size, st.st_mtime_ns
    except OSError:
        return 0, 0


@dataclass
class Plan:
    """What a re-run does (see :func:`plan`): ``todo`` [rel, size, mtime_ns] to embed; ``replaced`` the paths
    of those that have an old record; ``gone`` old records' paths no longer in the folder (never under an
    unlistable folder); ``kept`` how many files are unchanged. The lists are spooled, all path-sorted."""

    todo: Spool
    replaced: Spool
    gone: Spool
    kept: int

    def close(self) -> None:
        for s in (self.todo, self.replaced, self.gone):
            s.close()


def plan(scan: Scan, records: Iterable[dict], need_frames: bool = False) -> Plan:
    """Compare a folder's listing with an output's records (both sorted by path) by :func:`is_unchanged`,
    as two streams: nothing is held per file."""
    p = Plan(Spool(), Spool(), Spool(), 0)
    recs = iter(records)
    rec = next(recs, None)
    for e in scan:
        while rec is not None and rec["path"] < e.rel:
            if not scan.shielded(rec["path"]):
                p.gone.append(rec["path"])
            rec = next(recs, None)
        same = rec if rec is not None and rec["path"] == e.rel else None
        if same is not None:
            rec = next(recs, None)
        if is_unchanged(same, e, need_frames):
            p.kept += 1
        else:
            p.todo.append([e.rel, e.size, e.mtime_ns])
            if same is not None:
                p.replaced.append(e.rel)
    while rec is not None:
        if not scan.shielded(rec["path"]):
            p.gone.append(rec["path"])
        rec = next(recs, None)
    return p
