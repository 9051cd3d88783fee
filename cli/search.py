"""``audioemb search INDEX QUERY``: the nearest files (or segments) of an index to a query sound."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def search(
    index: Annotated[Path, typer.Argument(help="Index folder (from `audioemb index build`).")],
    query: Annotated[str, typer.Argument(help="An audio file, PATH@START-END (seconds) for part of one, or a "
                                         "folder of query files.")],
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="Results per query.")] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    all_segments: Annotated[bool, typer.Option("--all-segments", help="List every matching segment, not only "
                                               "the best one of each file.")] = False,
    device: Annotated[str, typer.Option(help="auto (CUDA when onnxruntime-gpu sees a GPU), cpu or cuda.")] = "auto",
    model: Annotated[str | None, typer.Option("--model", "-m", help="The index's model, when its folder has moved "
                                              "(checked against the one the index was built with).")] = None,
) -> None:
    """Search an index with the index's own model; results are ranked by cosine similarity.

    A query that cannot be searched (unreadable, not audio) is reported and the others go on; the exit code
    is then 1. Exit code 2: the index cannot be used, or there is no query at all.
    """
    import json

    from audioemb.audio import AudioError, printable, scan_audio
    from audioemb.index import Index, parse_query

    from ._errors import input_errors

    path = Path(query)
    with input_errors(FileNotFoundError):  # the library's own errors reach the one handler
        if path.is_dir():
            found, unreadable = scan_audio(path, undecoded=True)
            if not found:
                why = "".join(f"; {printable(d)}/ cannot be listed ({r})" for d, r in unreadable)
                raise FileNotFoundError(f"{query}: a folder with no audio files to use as queries{why}")
            queries = [str(p) for p in found]
        else:
            queries = [query]
        idx = Index.load(index, model=model, device=device)
    results, failed, answers = [], 0, []
    for q in queries:
        try:
            if not Path(parse_query(q)[0]).exists():
                head, at, tail = q.rpartition("@")
                if at and Path(head).is_file():  # a time range that does not parse
                    raise ValueError(f"{q}: {tail!r} is not a time range: give START-END in seconds (@1.5-4, or @2- "
                                     "to the end)")
                raise FileNotFoundError(f"{q}: no such file")
            results.append((q, idx.search(q, k=k, collapse=not all_segments)))
            answers.append({"query": q, "hits": [h.to_dict() for h in results[-1][1]]})
        except (AudioError, FileNotFoundError, ValueError) as e:  # this query; other errors stop them all
            failed += 1
            typer.echo(f"failed: {printable(str(e))}", err=True)
            answers.append({"query": q, "error": str(e)})
    if json_out:  # every query, in order: its hits, or the reason it failed
        typer.echo(json.dumps(answers, indent=1))
    else:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        for q, hits in results:
            table = Table(title=f"query: {printable(q)}")
            for col, just in (("rank", "right"), ("path", "left"), ("segment (s)", "right"), ("score", "right")):
                table.add_column(col, justify=just, overflow="fold")
            for h in hits:
                table.add_row(str(h.rank), printable(h.path), f"{h.start:.2f}-{h.end:.2f}", f"{h.score:.4f}")
            console.print(table)
    if failed:
        typer.echo(f"{failed} of {len(queries)} queries failed", err=True)
        raise typer.Exit(1 if results else 2)
