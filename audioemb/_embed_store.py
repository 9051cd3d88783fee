"""On-disk storage of an ``audioemb embed`` output folder: parts, the merge journal, and reading it back.

A merge rewrites ``embeddings.npy`` and ``manifest.jsonl`` from the previous merge and ``parts/``:

1. ``embeddings.npy.part`` and ``manifest.jsonl.next`` are written (each through a ``.tmp`` name, fsynced);
2. ``merge.json`` is written atomically: the commit point. It records the journal's record and row
   counts and the sha256 of ``manifest.jsonl.next``;
3. the two files are renamed over ``embeddings.npy`` and ``manifest.jsonl``, ``parts/`` is emptied, and
   ``merge.json`` is removed.

A run killed before step 2 leaves a journal without a valid ``merge.json``: it is discarded (the old
files and ``parts/`` are untouched). Killed after step 2, the journal is rolled forward by the next
writer, and readers read the committed journal in the meantime. A journal left by an older audioemb
(no ``merge.json``) is rolled forward only if every line parses and its rows match ``embeddings.npy``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

NEXT, PART, COMMIT = "manifest.jsonl.next", "embeddings.npy.part", "merge.json"


class EmbedError(Exception):
    """OUT cannot be used for this run (written by another model, from another folder, or not an output)."""


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through ``path.tmp`` (fsynced) and a rename, so it is never seen half-written."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def save_npy(path: Path, arr: np.ndarray) -> None:
    """np.save to exactly ``path`` (np.save would append .npy to a name like ``x.npy.part``)."""
    with open(path, "wb") as f:
        np.save(f, arr)


def write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=True) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """Records of a JSONL file; a line that does not parse is an :class:`EmbedError` naming the file."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise EmbedError(f"{path}: line {n} is not valid JSON ({e.msg}); the file is damaged") from None
    return out


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


def _journal(out: Path) -> tuple[str, list[dict] | None]:
    """State of the merge journal: ("none" | "committed" | "legacy" | "incomplete", its records)."""
    nxt, commit = out / NEXT, out / COMMIT
    if commit.exists():
        try:
            c = json.loads(commit.read_text())
        except (OSError, json.JSONDecodeError):
            c = None
        if c is not None and not nxt.exists():
            return "committed", None  # renames done; only the clean-up is left
        if c is not None and _sha256(nxt) == c.get("manifest_sha256"):
            return "committed", read_jsonl(nxt)
        return "incomplete", None
    if not nxt.exists():
        return "none", None
    try:
        recs = read_jsonl(nxt)
    except EmbedError:
        return "incomplete", None
    if not (out / PART).exists() and sum(r.get("row") is not None for r in recs) == _n_rows(out / "embeddings.npy"):
        return "legacy", recs
    return "incomplete", None


def recover(out: Path) -> str:
    """Finish a committed merge or discard an incomplete one (writers only); returns what was done."""
    state, _ = _journal(out)
    if state in ("committed", "legacy"):
        if (out / PART).exists():
            os.replace(out / PART, out / "embeddings.npy")
        if (out / NEXT).exists():
            os.replace(out / NEXT, out / "manifest.jsonl")
        if state == "committed":
            _clear_parts(out)
            (out / COMMIT).unlink()
        return "rolled forward"
    for name in (NEXT, PART, COMMIT, NEXT + ".tmp", PART + ".tmp"):
        (out / name).unlink(missing_ok=True)
    return "discarded" if state == "incomplete" else "none"


def _clear_parts(out: Path) -> None:
    parts = out / "parts"
    if parts.is_dir():
        for p in parts.iterdir():
            p.unlink()
        parts.rmdir()


def read_embeddings(out: str | os.PathLike) -> tuple[np.ndarray, list[dict]]:
    """Embeddings and manifest records of an ``embed`` output, including unmerged progress in ``parts/``.

    Records without an embedding (failed files) have ``row: None``. Rows index the returned array. A merge
    that was committed but not finished is read as finished; an incomplete one is ignored.
    """
    out = Path(out)
    state, journal = _journal(out)
    emb_path = out / PART if state in ("committed", "legacy") and (out / PART).exists() else out / "embeddings.npy"
    recs: dict[str, dict] = {}
    if journal is None and (out / "manifest.jsonl").exists():
        journal = read_jsonl(out / "manifest.jsonl")
    arrays: list[np.ndarray] = [np.load(emb_path, mmap_mode="r") if emb_path.exists() else np.zeros((0, 0))]
    for r in journal or []:
        recs[r["path"]] = dict(r, _src=(0, r["row"]))
    if state != "committed":  # a committed merge already holds the parts
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
            found.append((np.load(npy), read_jsonl(j)))
    return found


def merge(out: Path, keep_path: Callable[[str], bool]) -> int:
    """Rewrite embeddings.npy + manifest.jsonl from the old merge and parts, keeping records whose path
    ``keep_path`` accepts (see the module docstring for the journal); returns how many were dropped."""
    emb, records = read_embeddings(out)
    keep = [r for r in records if keep_path(r["path"])]
    removed = len(records) - len(keep)
    dim = emb.shape[1] if emb.ndim == 2 else 0
    new = np.zeros((sum(r["row"] is not None for r in keep), dim), np.float32)
    for i, r in enumerate(r for r in keep if r["row"] is not None):
        new[i] = emb[r["row"]]
        r["row"] = i
    atomic_write(out / PART, lambda p: save_npy(p, new))
    atomic_write(out / NEXT, lambda p: write_jsonl(p, keep))
    commit = {"records": len(keep), "rows": len(new), "manifest_sha256": _sha256(out / NEXT)}
    atomic_write(out / COMMIT, lambda p: p.write_text(json.dumps(commit)))
    recover(out)
    frames = out / "frames"
    if frames.is_dir():
        live = {r["frames"].split("/", 1)[1] for r in keep if r.get("frames")}
        for p in frames.iterdir():
            if p.name not in live:
                p.unlink()
    return removed
