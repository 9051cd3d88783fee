"""Shared helpers for the benchmarks: machine description, timing, markdown tables."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def machine() -> dict:
    import numpy
    import onnxruntime

    info = {"date": dt.datetime.now().isoformat(timespec="minutes"), "python": platform.python_version(),
            "cpu": _cpu_name(), "cores": os.cpu_count(), "numpy": numpy.__version__,
            "onnxruntime": onnxruntime.__version__}
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    try:
        import faiss

        info["faiss"] = faiss.__version__
    except ImportError:
        pass
    from audioemb import __version__

    info["audioemb"] = __version__
    return info


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Fastest wall time of ``repeat`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


@contextlib.contextmanager
def work_folder(given: str | None, prefix: str) -> Iterator[Path]:
    """The work folder ``given`` (kept afterwards), or a temporary one deleted at the end."""
    tmp = Path(given or tempfile.mkdtemp(prefix=prefix))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
    finally:
        if given is None:
            shutil.rmtree(tmp, ignore_errors=True)
