"""``audioemb embed DIR -o OUT``: embed every audio file under a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def embed(
    folder: Annotated[Path, typer.Argument(help="Folder of audio files (searched recursively), or one file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: embeddings.npy, manifest.jsonl.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name or folder (default: the "
                                              "bundled default model).")] = None,
    frames: Annotated[bool, typer.Option("--frames", help="Also write frame embeddings with timestamps.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Windows per model call.")] = 32,
    workers: Annotated[int | None, typer.Option("--workers", "-w", min=0, help="Decoding processes (default: one per "
                                                 "core as lanes; with --no-lanes or a GPU model a fifth of the "
                                                 "cores beside the model, or 0 on 1-2 cores: decode in the main "
                                                 "process). "
                                                 "With --ray: tasks at once (default: one per CPU).")] = None,
    lanes: Annotated[bool | None, typer.Option("--lanes/--no-lanes", help="Each decoding process also runs the "
                                               "model, on one thread (default: when the model runs on the CPU; "
                                               "then --workers defaults to one per core).")] = None,
    layer: Annotated[str | None, typer.Option(help="Layer to embed from: an index or 'mean' (default: last).")] = None,
    backend: Annotated[str, typer.Option(help="onnx (default) or torch.")] = "onnx",
    prune: Annotated[bool, typer.Option(help="Remove files no longer in the folder from OUT, however many (without "
                                        "it, more than a few are kept).")] = False,
    new_root: Annotated[bool, typer.Option("--new-root", help="Accept an OUT written from another folder and make "
                                           "FOLDER its folder.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    device: Annotated[str, typer.Option(help="auto (CUDA when onnxruntime-gpu sees a GPU), cpu or cuda.")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON (counts, failures, "
                                           "warnings) instead of the summary line.")] = False,
    ray: Annotated[bool, typer.Option("--ray", help="Run the job on a Ray cluster with Ray Data (the \\[ray] extra): "
                                      "--ray-address, else RAY_ADDRESS, else a local one. OUT holds shards.")] = False,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="The Ray cluster, e.g. ray://head:10001 "
                                                    "or auto.")] = None,
) -> None:
    """Embed a folder. Re-running on the same OUT embeds only new or changed files; an interrupted run resumes.

    Exit code 0 when every file was embedded, 1 when some failed or a folder could not be read (each failure
    is in manifest.jsonl with its reason), 2 for usage errors.
    """
    from audioemb.audio import printable
    from audioemb.embed import embed_folder, iter_records
    from audioemb.runtime import load

    from ._errors import input_errors

    with input_errors(FileNotFoundError, ValueError):  # the library's own errors reach the one handler
        lay = None if layer is None else (layer if layer == "mean" else int(layer))
        if ray or ray_address:
            from audioemb.ray_embed import embed_folder_ray

            ignored = [flag for flag, used in (("--backend", backend != "onnx"), ("--device", device != "auto"),
                                               ("--lanes/--no-lanes", lanes is not None)) if used]
            if ignored:  # the Ray tasks run onnxruntime on each node's CPUs: these would be ignored in silence
                raise ValueError(f"{', '.join(ignored)} cannot be used with --ray (its tasks run the ONNX model on "
                                 "each node's CPUs)")

            summary = embed_folder_ray(folder, out, model, address=ray_address, batch_size=batch_size, workers=workers,
                                       frames=frames, layer=lay, prune=prune, new_root=new_root)
        else:
            m = model if backend == "onnx" and device == "auto" else load(model, backend=backend, device=device)
            try:
                summary = embed_folder(folder, out, m, batch_size=batch_size, workers=workers, frames=frames,
                                       layer=lay, progress=progress, prune=prune, new_root=new_root, device=device,
                                       lanes=lanes)
            except KeyboardInterrupt:
                saved = sum(1 for r in iter_records(out) if not r.get("error")) if out.is_dir() else 0
                typer.echo(f"interrupted: {saved} files are embedded in {out}; run the same command again to "
                           "embed the rest", err=True)
                raise typer.Exit(130) from None
    for r in iter_records(out):
        if r.get("error"):
            typer.echo(f"failed: {printable(r['path'])}: {r['error']}", err=True)
        elif r.get("warning"):
            typer.echo(f"warning: {printable(r['path'])}: {r['warning']}", err=True)
    for d, reason in summary.unreadable:
        typer.echo(f"failed: {printable(d)}/: cannot list this folder ({reason}); its files were kept", err=True)
    if json_out:
        import json

        typer.echo(json.dumps(summary_json(summary, out), indent=1, ensure_ascii=False))
    else:
        typer.echo(summary.line())
    raise typer.Exit(1 if summary.failed or summary.unreadable else 0)


def summary_json(summary, out: Path) -> dict:
    """``embed --json``: the run's counts, and each failed or warned file with its reason."""
    from audioemb.audio import printable
    from audioemb.embed import iter_records

    records = list(iter_records(out))
    return {"out": str(out), "total": summary.total, "embedded": summary.embedded, "kept": summary.kept,
            "failed": summary.failed, "removed": summary.removed, "gone_kept": summary.gone_kept,
            "warned": summary.warned, "seconds": round(summary.seconds, 2),
            "failures": [{"path": printable(r["path"]), "error": r["error"]} for r in records if r.get("error")],
            "warnings": [{"path": printable(r["path"]), "warning": r["warning"]} for r in records
                         if r.get("warning") and not r.get("error")],
            "unreadable": [{"folder": printable(str(d)), "reason": reason} for d, reason in summary.unreadable],
            "symlinked_folders": [printable(d) for d in summary.links]}

