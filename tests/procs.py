"""Child processes read from /proc, for the tests that kill jobs and their decoder processes."""

from __future__ import annotations

import os


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...); None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def child_pids(pid: int, cmd_has: bytes | None = None) -> list[int]:
    """Process ids whose parent is ``pid`` (and whose command line contains ``cmd_has``, if given)."""
    found = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        st = _stat(d)
        if st is None or int(st[1]) != pid:
            continue
        if cmd_has is not None:
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if cmd_has not in f.read():
                        continue
            except OSError:
                continue
        found.append(int(d))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie has exited)."""
    st = _stat(pid)
    return st is not None and st[0] != "Z"
