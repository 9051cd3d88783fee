"""``audioemb results``: regenerate docs/results.md (and the model cards) from the shipped models' figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def results(
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown file to write.")] = Path("docs/results.md"),
    corpus: Annotated[Path | None, typer.Option(help="Corpus folder, needed with --rerun.")] = None,
    rerun: Annotated[bool, typer.Option(help="Re-score every shipped model (3 random-init seeds, few-shot) before "
                                        "writing; embeddings and scores are cached in CORPUS/cache/eval.")] = False,
    pattern: Annotated[str, typer.Option(help="Glob over model names.")] = "*",
    cache: Annotated[Path | None, typer.Option(help="Cache folder for --rerun (default CORPUS/cache/eval).")] = None,
) -> None:
    """One table per metric of every shipped model on every held-out task, whether each model learns (against
    its random-init encoder), the default-model rule applied, and training cost."""
    from audioemb.eval.results import rerun as do_rerun
    from audioemb.eval.results import write_results

    from ._errors import fail

    if rerun:
        if corpus is None or not (corpus / "tasks").is_dir():
            fail(f"--rerun needs --corpus, a corpus folder with tasks/*.csv (got {corpus})")
        try:
            do_rerun(corpus, pattern, log=lambda s: typer.echo(s, err=True), cache=cache)
        except ImportError:
            fail("--rerun scores random-init encoders, which needs torch: pip install 'audioemb[train]'")
    write_results(out, pattern)
    typer.echo(f"wrote {out}")
