"""The collections ``audioemb cluster`` reads: an ``audioemb embed`` output or an index folder, as vectors with
one item ({path[, start, end]}) per row; and reference labels (CSV path,label) to score a clustering against."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import weakref
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Collection:
    """Vectors of an embed output or index, with one item ({path[, start, end]}) per row. Neither is read up
    front: a memory map or a :class:`audioemb._vectors.RowView`, read in slices, and items made when asked."""

    vectors: np.ndarray
    items: Sequence[dict]
    kind: str  # "embed" or "index"
    model: str | None
    root: str | None = None


def read_collection(path: str | os.PathLike) -> Collection:
    """Read an ``audioemb embed`` output folder or an index folder (from ``audioemb index build``)."""
    path = Path(path)
    if (path / "current.json").exists():
        from .index import Index

        idx = Index.load(path)
        vecs, recs = idx.items(lazy=True, rows=False)  # read as the clustering goes: it may exceed memory
        return Collection(vecs, recs, "index", idx.info["model"], idx.info.get("root"))
    from ._embed_store import SHARDS
    from .scan import has_audio

    if (path / "manifest.jsonl").exists() or (path / "parts").is_dir() or (path / SHARDS).exists():
        info = json.loads((path / "info.json").read_text()) if (path / "info.json").exists() else {}
        vectors, items = _embed_rows(path)
        return Collection(vectors, items, "embed", info.get("model"), info.get("root") or info.get("folder"))
    if has_audio(path):
        raise FileNotFoundError(f"{path}: a folder of audio files, not yet embedded; embed it first (`audioemb embed "
                                f"{path} -o OUT`, or `audioemb index build {path} -o OUT`) and cluster OUT")
    raise FileNotFoundError(f"{path}: neither an `audioemb embed` output (manifest.jsonl) nor an index "
                            "(current.json)")


COPY_CHUNK = 65536  # rows gathered before each write of the temporary copy


class Paths(Sequence):
    """The {path} of each row of an embed output, kept as UTF-8 in a temporary file (``offsets[i]`` to
    ``offsets[i + 1]``) and made when asked for: a list of 10^6 dicts would take hundreds of megabytes."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray):
        self._data, self._off = data, offsets

    def __len__(self) -> int:
        return len(self._off) - 1

    def _one(self, i: int) -> dict:
        return {"path": bytes(self._data[self._off[i]:self._off[i + 1]]).decode()}

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._one(j) for j in range(*i.indices(len(self)))]
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self._one(i % len(self))


def _embed_rows(path: Path) -> tuple[np.ndarray, Paths]:
    """The vectors and paths of an embed output's embedded files (local or Ray shards), in path order, copied
    as they stream into a temporary folder and read back through memory maps: what clustering holds stays
    flat in the number of files (the parts of a local output and the shards are not one array). The folder
    goes when the vectors and paths do (or at exit); the vectors' file has a name, so that scattered rows are
    read with ``pread`` (:func:`audioemb._vectors.take`), not mapped."""
    from ._embed_store import entries
    from ._vectors import release

    folder = Path(tempfile.mkdtemp(prefix="audioemb-cluster-"))
    offsets, rows, names, dim, source = array("q", [0]), [], [], 0, None
    try:
        with open(folder / "vectors.f32", "wb") as vec_f, open(folder / "paths.utf8", "wb") as path_f:
            def flush() -> None:
                release(source)  # the pages of the output's embeddings.npy read so far
                try:
                    vec_f.write(np.stack(rows).astype("<f4", copy=False).tobytes())
                    path_f.write(b"".join(names))
                except OSError as e:  # a full TMPDIR: say which folder, not a file descriptor
                    raise OSError(e.errno, e.strerror, f"{folder} (the temporary copy of {path}'s vectors; set "
                                                       "TMPDIR to a larger disk)") from None
                rows.clear()
                names.clear()

            for r, emb, row in entries(path):
                if row is None:
                    continue
                rows.append(np.array(emb[row], np.float32))
                dim, source = dim or rows[-1].shape[0], emb
                names.append(r["path"].encode())
                offsets.append(offsets[-1] + len(names[-1]))
                if len(rows) >= COPY_CHUNK:
                    flush()
            if rows:
                flush()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    n = len(offsets) - 1
    vectors = (np.memmap(folder / "vectors.f32", np.float32, "r", shape=(n, dim)) if n
               else np.zeros((0, dim), np.float32))
    data = np.memmap(folder / "paths.utf8", np.uint8, "r") if offsets[-1] else np.zeros(0, np.uint8)
    items = Paths(data, np.frombuffer(offsets, np.int64))
    holder = _TempFolder()  # held by both (and by the vectors' views, through their base): removed after the last
    weakref.finalize(holder, shutil.rmtree, folder, True)  # (TemporaryDirectory warns when it cleans up this way)
    items._tmp = holder
    if isinstance(vectors, np.memmap):
        vectors._tmp = holder
    return vectors, items


class _TempFolder:
    """What keeps a temporary copy on disk while its memory maps are in use."""


def read_labels(csv_path: str | os.PathLike) -> dict[str, str]:
    """{path: label} from a CSV with columns path,label."""
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{csv_path}: needs a header with columns path,label (got {reader.fieldnames})")
        return {row["path"]: row["label"] for row in reader}
