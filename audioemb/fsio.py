"""Crash-safe file writes: every writer in audioemb goes through :func:`atomic_write`.

A file is written under a temporary name in the same folder, fsynced, renamed over the final name, and
the folder is fsynced, so a reader (or a process restarted after a crash or power loss) sees either the
old file or the whole new one, never a torn one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
    (for writers such as ``np.save`` or ``safetensors.save_file``). Returns ``path``.
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
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """:func:`atomic_write` of ``obj`` as JSON (UTF-8, trailing newline)."""
    return atomic_write(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")
