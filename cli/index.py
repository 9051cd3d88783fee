"""``audioemb index build|add|merge|info``: faiss indexes of audio collections, searched with ``audioemb search``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Build, update and describe search indexes of audio collections.", no_args_is_help=True)

def _report(files: list[dict], unreadable: list) -> bool:
    """Print each failed or warned file and unreadable folder to stderr; True if anything failed."""
    from audioemb.audio import printable

    failed = False
    for f in files:
        if f.get("error"):
            failed = True
            typer.echo(f"failed: {printable(f['path'])}: {f['error']}", err=True)
        elif f.get("warning"):
            typer.echo(f"warning: {printable(f['path'])}: {f['warning']}", err=True)
    for d, reason in unreadable:
        failed = True
        typer.echo(f"failed: {printable(d)}/: cannot list this folder ({reason}); its files were kept", err=True)
    return failed


@app.command("build")
def build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Index folder to write.")],
    folder: Annotated[Path | None, typer.Argument(help="Folder of audio files (searched recursively); with --from, "
                                                  "the folder that output was embedded from (default: the one "
                                                  "it records; another must hold its files).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name or folder (default: the default "
                                              "model; with --from: the model that wrote it).")] = None,
    segments: Annotated[float | None, typer.Option(help="Index windows of this many seconds instead of whole "
                                                   "files, so a query can land inside a long recording.")] = None,
    index_type: Annotated[str, typer.Option("--type", "-t", help="auto, flat, hnsw, ivf or ivfpq (auto: flat "
                                            "below 20k vectors, hnsw below 1M, ivf above; ivfpq beyond "
                                            "--memory-gb, with its lists on disk).")] = "auto",
    from_embed: Annotated[Path | None, typer.Option("--from", "--from-embed", help="Build from an `audioemb embed` "
                                                    "output folder (local or Ray shards) instead of embedding "
                                                    "again.")] = None,
    memory_gb: Annotated[float, typer.Option(min=0.0, help="Memory budget for raw vectors (GiB); above it auto "
                                             "picks ivfpq with its inverted lists on disk.")] = 4.0,
    force: Annotated[bool, typer.Option("--force", help="Rebuild an existing index at OUT.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Windows per model call.")] = 32,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    device: Annotated[str, typer.Option(help="auto (CUDA when onnxruntime-gpu sees a GPU), cpu or cuda.")] = "auto",
) -> None:
    """Embed a folder (or reuse its embed output) and build a cosine-similarity index of it."""
    from audioemb.index import Index

    from ._errors import fail, input_errors

    if folder is None and from_embed is None:
        fail("give a FOLDER to embed, or --from OUT to build from an embed output")
    with input_errors(FileNotFoundError, ValueError):  # the library's own errors reach the one handler
        idx = Index.build(folder, out, model=model, segments=segments, index_type=index_type.lower(),
                          from_embed=from_embed, overwrite=force, memory_budget_gb=memory_gb, batch_size=batch_size,
                          progress=progress, device=device)
    i = idx.info
    failed = _report(idx.files, i.get("unreadable_folders") or [])
    from audioemb.embed import links_note

    typer.echo(f"indexed {len(idx)} vectors from {i['n_files'] - i['n_failed']} files ({i['n_failed']} failed) with "
               f"{i['model']}: {_kind(i)}, recall@10 {i['recall@10']:.3f} -> {out}"
               f"{links_note(i.get('symlinked_folders') or [])}")
    raise typer.Exit(1 if failed else 0)


@app.command("add")
def add(
    index: Annotated[Path, typer.Argument(help="Index folder.")],
    folder: Annotated[Path | None, typer.Argument(help="Collection folder (default: the one it was built "
                                                  "from).")] = None,
    prune: Annotated[bool, typer.Option(help="Also remove files that are no longer in the folder.")] = False,
    new_root: Annotated[bool, typer.Option("--new-root", help="FOLDER is not the folder the index was built from: "
                                           "make it the index's folder.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Windows per model call.")] = 32,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    device: Annotated[str, typer.Option(help="auto (CUDA when onnxruntime-gpu sees a GPU), cpu or cuda.")] = "auto",
    model: Annotated[str | None, typer.Option("--model", "-m", help="The index's model, when its folder has moved "
                                              "(checked against the one the index was built with).")] = None,
) -> None:
    """Add new files and re-embed changed ones (size or modification time differs), atomically."""
    from audioemb.index import Index

    from ._errors import input_errors

    with input_errors(FileNotFoundError, ValueError):
        idx = Index.load(index, model=model, device=device)
        summary = idx.add(folder, prune=prune, batch_size=batch_size, progress=progress, new_root=new_root)
    failed = _report(summary.problems, summary.unreadable)
    typer.echo(summary.line())
    raise typer.Exit(1 if failed else 0)


@app.command("merge")
def merge(
    sources: Annotated[list[Path], typer.Argument(help="Indexes to merge (same model and segment length).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index folder to write.")],
    index_type: Annotated[str, typer.Option("--type", "-t", help="auto, flat, hnsw, ivf or ivfpq.")] = "auto",
    memory_gb: Annotated[float, typer.Option(min=0.0, help="Memory budget for raw vectors (GiB); above it auto "
                                             "picks ivfpq with its inverted lists on disk.")] = 4.0,
    force: Annotated[bool, typer.Option("--force", help="Rebuild an existing index at OUT.")] = False,
) -> None:
    """Merge indexes (built on several machines, or from shards of one collection) into one, without embedding."""
    from audioemb.index import Index

    from ._errors import input_errors

    with input_errors(FileNotFoundError, ValueError):
        idx = Index.merge(sources, out, index_type=index_type.lower(), memory_budget_gb=memory_gb, overwrite=force)
    i = idx.info
    typer.echo(f"merged {len(sources)} indexes: {len(idx)} vectors from {i['n_files']} files, {_kind(i)}, "
               f"recall@10 {i['recall@10']:.3f} -> {out}")


def _kind(info: dict) -> str:
    return f"{info['index_type']} index" + (" (inverted lists on disk)" if info.get("on_disk") else "")


@app.command("info")
def info(
    index: Annotated[Path, typer.Argument(help="Index folder.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Index type, vectors, files, model, dimension, size on disk and the recall@10 measured at build."""
    import json

    from audioemb.index import Index

    from ._errors import input_errors

    with input_errors(FileNotFoundError, ValueError):
        idx = Index.load(index)
    data = {"path": str(index), **idx.info, "size_bytes": idx.disk_size()}
    if json_out:
        typer.echo(json.dumps(data, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"index {index}", show_header=False)
    rows = [("type", data["index_type"] + ("" if data["index_type_requested"] == "auto" else " (forced)")
             + (", inverted lists on disk" if data.get("on_disk") else "")),
            ("vectors", str(data["count"])), ("files", f"{data['n_files']} ({data['n_failed']} failed)"),
            ("segments", "whole files" if not data["segments_s"] else f"{data['segments_s']:g} s"),
            ("model", f"{data['model']} (sha256 {str(data['model_sha256'])[:12]})"), ("dim", str(data["dim"])),
            ("size on disk", f"{data['size_bytes'] / 1e6:.2f} MB"), ("recall@10", f"{data['recall@10']:.4f}"),
            ("params", json.dumps(data["build_params"])), ("collection", data["root"]),
            ("created", data["created"]), ("updated", data["updated"])]
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)
