"""Every relative link in the README, docs/ and the model cards reaches a file, and its #anchor a heading there
(GitHub's heading slugs). The findings cross-link dozens of sections; a renamed heading must not leave one dead."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def heading_slugs(md: Path) -> set[str]:
    """The anchors GitHub gives ``md``'s headings: lower case, punctuation dropped, spaces to hyphens, and
    ``-1``, ``-2`` … on repeats; headings inside fenced code are not headings."""
    out: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in md.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        m = None if fenced else re.match(r"#{1,6} (.*)", line)
        if m:
            text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1).strip())
            slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def dead_links(md: Path) -> list[str]:
    """The relative links of ``md`` whose file or heading does not exist."""
    dead = []
    for link in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", link):  # https:, mailto:, hf-hub: …
            continue
        path, _, anchor = link.partition("#")
        target = (md.parent / path).resolve() if path else md
        if not target.exists():
            dead.append(f"{link} (no such file)")
        elif anchor and target.suffix == ".md" and anchor not in heading_slugs(target):
            dead.append(f"{link} (no such heading)")
    return dead


def test_every_relative_link_in_the_docs_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "pretrained").glob("*/README.md"))]
    assert len(pages) > 20
    dead = {str(p.relative_to(ROOT)): d for p in pages if (d := dead_links(p))}
    assert not dead, dead


def test_the_checker_finds_a_dead_anchor_and_a_missing_file(tmp_path):
    (tmp_path / "a.md").write_text("# Title: one `code` 5× longer\n\n## Repeat\n## Repeat\n```\n# not a heading\n```\n")
    (tmp_path / "b.md").write_text("[ok](a.md#title-one-code-5-longer) [ok](a.md#repeat-1) [ok](#own) [web](https://x.y/z)\n"
                                   "[bad](a.md#repeat-2) [bad](a.md#not-a-heading) [gone](c.md)\n# own\n")
    assert dead_links(tmp_path / "b.md") == ["a.md#repeat-2 (no such heading)", "a.md#not-a-heading (no such heading)",
                                             "c.md (no such file)"]
