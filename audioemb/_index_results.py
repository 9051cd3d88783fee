"""What :class:`audioemb.index.Index` returns: search hits, the summary of an ``add``, and query parsing."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field

from .embed import kept_notes

_RANGE = re.compile(r"^(.*)@(\d+(?:\.\d*)?)-(\d+(?:\.\d*)?)?$")


_TIE_DECIMALS = 5  # scores equal to this many decimals are ties (float32 cosines of copies differ below it)


@dataclass
class Hit:
    """One search result: a segment ``[start, end]`` seconds of ``path`` (relative to the collection)."""

    path: str
    start: float
    end: float
    score: float
    rank: int
    row: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AddSummary:
    """What an ``Index.add`` did: files added, re-embedded, removed, failed and unchanged, and what it kept."""

    added: int
    changed: int
    removed: int
    failed: int
    unchanged: int
    rebuilt: bool
    count: int
    unreadable: list = field(default_factory=list)  # (folder, reason) that could not be listed
    problems: list = field(default_factory=list)  # file records of this add with an error or a warning
    gone_kept: int = 0  # files no longer in the folder, kept because removing them needs prune
    links: list = field(default_factory=list)  # symlinked folders, not followed

    def line(self) -> str:
        s = (f"added {self.added} files, re-embedded {self.changed}, removed {self.removed}, failed {self.failed}, "
             f"unchanged {self.unchanged}{' (index rebuilt)' if self.rebuilt else ''}; {self.count} vectors")
        return s + kept_notes(self.gone_kept, self.unreadable, self.links)


def parse_query(s: str) -> tuple[str, float | None, float | None]:
    """``"path@START-END"`` (seconds; END may be left out) -> (path, start, end); a plain path -> (path, None, None)."""
    m = _RANGE.match(s)
    if m and not os.path.exists(s):
        return m[1], float(m[2]), (float(m[3]) if m[3] else None)
    return s, None, None
