"""``audioemb results``: regenerate docs/results.md (and the model cards) from the shipped models' figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def results(
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown file to write.")] = Path("docs/results.md"),
    corpus: Annotated[Path | None, typer.Option(help="Corpus folder, needed with --rerun.")] = None,
    rerun: Annotated[bool, typer.Option(help="Re-score every shipped model before writing (slow).")] = False,
    pattern: Annotated[str, typer.Option(help="Glob over model names.")] = "*",
) -> None:
    """One table per metric of every shipped model on every held-out task, plus training cost."""
    from audioemb.eval.results import rerun as do_rerun
    from audioemb.eval.results import write_results

    if rerun:
        if corpus is None:
            raise typer.BadParameter("--rerun needs --corpus")
        do_rerun(corpus, pattern, log=lambda s: typer.echo(s, err=True))
    write_results(out, pattern)
    typer.echo(f"wrote {out}")
