"""Vectors larger than memory: rows of memory-mapped ``.npy`` files read without keeping their pages resident.

A process that scans a 7 GB ``vectors.npy`` through ``np.load(mmap_mode="r")`` would otherwise count every
page it touched in its RSS; :func:`release` drops them after each chunk, :func:`take` reads scattered rows
with ``os.pread``, and :class:`RowView` selects rows without copying them.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np


def l2_normalize(v: np.ndarray) -> np.ndarray:
    """Rows of ``v`` as float32, scaled to unit L2 norm along the last axis (all-zero rows stay zero)."""
    v = np.asarray(v, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def release(arr) -> None:
    """Drop the resident pages of a memory-mapped array (np.memmap or a view of one); they are read again
    from disk when needed, so scanning a file larger than memory does not grow the process's RSS."""
    import mmap

    mm = getattr(arr, "_mmap", None)
    if isinstance(mm, mmap.mmap):
        with contextlib.suppress(OSError, ValueError):
            mm.madvise(mmap.MADV_DONTNEED)


def take(stored: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``stored[rows]`` as float32; rows of a memory-mapped .npy are read with ``os.pread``, so random reads
    for re-ranking leave no pages of a file larger than memory resident in the process."""
    import mmap

    fname = getattr(stored, "filename", None)
    if not isinstance(stored, np.memmap) or not isinstance(stored.base, mmap.mmap) or fname is None \
            or stored.dtype != np.float32 or stored.ndim != 2:  # not a whole file's map (a view, another type)
        return np.asarray(stored[rows], dtype=np.float32)
    width = stored.shape[1] * 4
    order = np.argsort(rows, kind="stable")
    fd = os.open(fname, os.O_RDONLY)
    try:
        buf = b"".join(os.pread(fd, width, stored.offset + int(r) * width) for r in rows[order])
    finally:
        os.close(fd)
    out = np.empty((len(rows), stored.shape[1]), np.float32)
    out[order] = np.frombuffer(buf, np.float32).reshape(len(rows), -1)
    return out


class RowView:
    """``vectors[rows]`` read lazily in chunks (for vectors larger than memory); supports ``len``, ``shape``
    and slices, which is what :meth:`Version.write_vectors` and :func:`audioemb._faiss.build` need."""

    def __init__(self, vectors: np.ndarray, rows: np.ndarray):
        self.vectors, self.rows = vectors, np.asarray(rows, np.int64)
        self.shape = (len(self.rows), vectors.shape[1])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, sl) -> np.ndarray:
        if not isinstance(sl, slice):  # scattered rows (a training sample): read them, don't map them
            return take(self.vectors, self.rows[sl])
        out = np.asarray(self.vectors[self.rows[sl]], dtype=np.float32)
        release(self.vectors)
        return out


def live_vectors(vectors: np.ndarray, rows: np.ndarray):
    """``vectors[rows]`` without reading it: the array itself when ``rows`` is 0..N-1, else a :class:`RowView`."""
    rows = np.asarray(rows, np.int64)
    if len(rows) == len(vectors) and (len(rows) == 0 or (rows[0] == 0 and np.all(np.diff(rows) == 1))):
        return vectors
    return RowView(vectors, rows)
