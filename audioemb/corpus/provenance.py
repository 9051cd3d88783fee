"""What a corpus build depended on, and fingerprints to tell two builds apart by part.

``recipe.json`` keeps one hash of the whole manifest. Two builds of the same recipe that differ in it
(another machine, a newer decoder) then say nothing about where they differ. The fingerprints below hash
each source's rows and each task CSV on their own, and the versions name what could have changed.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections import defaultdict
from pathlib import Path


def debian_versions(packages: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The installed Debian version of each of ``packages`` (``dpkg-query``), or ``"not installed"``."""
    out = {}
    for pkg in packages:
        try:
            r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True,
                               timeout=30)
            out[pkg] = r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else "not installed"
        except (OSError, subprocess.SubprocessError):
            out[pkg] = "unknown"
    return out


def library_versions() -> dict[str, str]:
    """Versions of the Python libraries that decode and resample the clips."""
    import numpy
    import soundfile
    import soxr

    return {"soundfile": soundfile.__version__, "libsndfile": soundfile.__libsndfile_version__,
            "soxr": soxr.__version__, "numpy": numpy.__version__}


def fingerprints(rows: list[dict], lines: list[str], corpus: Path) -> dict[str, dict[str, str]]:
    """sha256 of each ``source/split``'s manifest lines (``lines[i]`` is ``rows[i]`` as written, in manifest
    order) and of each ``tasks/*.csv``.

    Two builds whose fingerprints agree for a source have byte-identical manifest rows for it; the task
    hashes say whether held-out figures were measured on the same clip lists.
    """
    parts: defaultdict = defaultdict(hashlib.sha256)
    for r, line in zip(rows, lines):
        parts[f"{r['source']}/{r['split']}"].update(line.encode())
    tasks = {p.stem: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((Path(corpus) / "tasks").glob("*.csv"))}
    return {"sources": {k: h.hexdigest() for k, h in sorted(parts.items())}, "tasks": tasks}
