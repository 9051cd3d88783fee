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
    cache: Annotated[Path | None, typer.Option(help="Cache folder for --rerun and --other-tasks "
                                                       "(default CORPUS/cache/eval).")] = None,
    other_tasks: Annotated[Path | None, typer.Option(
        help="Score every model on this corpus's tasks that are outside its held-out suite (corpus v2's own "
             "tasks), cached like --rerun. They get their own section, never the suite's means or the rule.")] = None,
) -> None:
    """One table per metric of every shipped model on every held-out task, whether each model learns (against
    its random-init encoder), the default-model rule applied, and training cost."""
    from audioemb.eval.results import rerun as do_rerun
    from audioemb.eval.results import rerun_other, write_results
    from audioemb.registry import list_models

    from ._errors import fail

    log = lambda s: typer.echo(s, err=True)  # noqa: E731
    if not list_models(pattern):  # an empty page written with "wrote", before
        fail(f"no shipped model matches {pattern!r}; shipped: {', '.join(list_models())}")
    if rerun and (corpus is None or not (corpus / "tasks").is_dir()):
        fail(f"--rerun needs --corpus, a corpus folder with tasks/*.csv (got {corpus})")
    if other_tasks is not None and not (other_tasks / "tasks").is_dir():
        fail(f"--other-tasks needs a corpus folder with tasks/*.csv (got {other_tasks})")
    try:
        if rerun:
            do_rerun(corpus, pattern, log=log, cache=cache)
        if other_tasks is not None:  # one cache with the suite's: the random-init encoders are shared
            rerun_other(other_tasks, pattern, log=log, cache=cache or (corpus or other_tasks) / "cache" / "eval",
                        fit_corpora=(corpus,) if corpus is not None else ())
    except ImportError:
        fail("scoring random-init encoders needs torch: pip install 'audioemb[train]'")
    write_results(out, pattern)
    typer.echo(f"wrote {out}")
