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
) -> None:
    """Search an index with the index's own model; results are ranked by cosine similarity."""
    import json

    from audioemb.audio import AudioError, find_audio
    from audioemb.index import Index, IndexStoreError, parse_query
    from audioemb.modelfolder import ModelFolderError

    path = Path(query)
    queries = [str(p) for p in find_audio(path)] if path.is_dir() else [query]
    results = []
    try:
        idx = Index.load(index)
        for q in queries:
            if not Path(parse_query(q)[0]).exists():
                raise FileNotFoundError(f"{q}: no such file")
            results.append((q, idx.search(q, k=k, collapse=not all_segments)))
    except (IndexStoreError, ModelFolderError, AudioError, FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if json_out:
        typer.echo(json.dumps([{"query": q, "hits": [h.to_dict() for h in hits]} for q, hits in results], indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for q, hits in results:
        table = Table(title=f"query: {q}")
        for col, just in (("rank", "right"), ("path", "left"), ("segment (s)", "right"), ("score", "right")):
            table.add_column(col, justify=just, overflow="fold")
        for h in hits:
            table.add_row(str(h.rank), h.path, f"{h.start:.2f}-{h.end:.2f}", f"{h.score:.4f}")
        console.print(table)
