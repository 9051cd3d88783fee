"""No command in the README, the docs or the benchmarks names a retired model (it would be refused), except
where a doc records a past run's output."""

from __future__ import annotations

import re
from pathlib import Path

from audioemb.registry import RETIRED

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, RETIRED)) + r")(?![\w.-])")
RECORDED = {("docs/adapt.md", "-m byol-s.debian")}  # the command of a measured run, kept as it was run


def _commands(text: str) -> list[str]:
    blocks = re.findall(r"```(?:bash|sh|console|python)?\n(.*?)```", text, re.S)
    return [line for b in blocks for line in b.splitlines() if not line.lstrip().startswith("- ")]


def test_no_command_names_a_retired_model():
    found = []
    for f in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        rel = f.relative_to(ROOT).as_posix()
        for line in _commands(f.read_text()):
            if NAME.search(line) and not any(rel == r and s in line for r, s in RECORDED):
                found.append(f"{rel}: {line.strip()}")
    for f in [*(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.sh")]:
        found += [f"{f.relative_to(ROOT)}: {line.strip()}" for line in f.read_text().splitlines() if NAME.search(line)]
    assert not found, found
