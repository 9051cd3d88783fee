"""Crash-safe file writes: every writer in audioemb goes through :func:`atomic_write`.

A file is written under a temporary name in the same folder, fsynced, renamed over the final name, and
the folder is fsynced, so a reader (or a process restarted after a crash or power loss) sees either the
old file or the whole new one, never a torn one.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or a folder by path (a folder's fsync makes a rename inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still exists (another user's process counts as alive): the test the stale
    build and cache folders named after their process's pid are removed by."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def publish(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Make a finished temporary file ``tmp`` (in ``final``'s folder) visible as ``final``, durably: fsync the
    file, rename it over ``final``, fsync the folder. For files that an outside tool wrote under a name of
    its own choosing (espeak-ng, festival, fluidsynth)."""
    fsync_path(tmp)
    os.replace(tmp, final)
    fsync_path(Path(final).parent)
    return Path(final)


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[Path], Any]) -> Path:
    """Write ``path`` atomically and durably.

    ``data`` is the bytes or text to write, or a callable given the temporary path to write itself
    (for writers that take a path, such as ``torch.onnx.export``). Returns ``path``.
    """
    final = Path(path)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        if callable(data):
            data(tmp)
        else:
            with open(tmp, "wb") as f:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
        return publish(tmp, final)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno is not None and e.filename is None:  # a failed write names no file: name the one written
            raise OSError(e.errno, e.strerror, str(final)) from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """:func:`atomic_write` of ``obj`` as JSON (UTF-8, trailing newline)."""
    return atomic_write(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def save_npy(path: str | os.PathLike, arr: np.ndarray) -> None:
    """``np.save`` to exactly ``path`` (np.save would add ".npy" to a name like ``x.npy.part``), written with
    Python's file writes: numpy's own ``tofile`` reports a full disk as a short write without its errno."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype.hasobject:
        raise ValueError(f"{path}: an array of Python objects cannot be saved without pickle")
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(arr))
        f.write(arr.data)


def open_memmap_allocated(path: str | os.PathLike, dtype, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` memory map whose disk blocks are reserved up front (``posix_fallocate``), so a full disk
    is an ``OSError(ENOSPC)`` here rather than a SIGBUS on the first write into a page that has no block.
    File systems that cannot reserve blocks get the sparse file numpy makes."""
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise OSError(e.errno, e.strerror, str(path)) from None
    finally:
        os.close(fd)
    return mm
