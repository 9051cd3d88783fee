"""A progress bar on stderr for commands that run a while (cluster, eval): a ``step(stage, done, total)`` callback."""

from __future__ import annotations

import contextlib


def progress_bar(enabled: bool):
    """A context giving ``step(stage, done, total)`` that drives a transient rich progress bar on stderr (one row
    per stage), or giving None when not ``enabled``."""
    if not enabled:
        return contextlib.nullcontext(None)

    @contextlib.contextmanager
    def bar():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      transient=True, console=Console(stderr=True)) as p:
            tasks: dict[str, int] = {}

            def step(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = p.add_task(stage, total=total)
                p.update(tasks[stage], completed=done, total=total)

            yield step

    return bar()
