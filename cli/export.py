"""``audioemb export RUN -o FOLDER``: a trained run -> a model folder with ONNX, figures and card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    run: Annotated[Path | None, typer.Argument(help="Run folder written by `audioemb train`.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (e.g. pretrained/NAME).")] = ...,
    corpus: Annotated[Path, typer.Option(help="The corpus the run trained on (held-out clips and tasks).")] = ...,
    evaluate: Annotated[bool, typer.Option(help="Score on the corpus's held-out tasks for the card.")] = True,
    concat: Annotated[list[str] | None, typer.Option(help="Instead of RUN: model folders or names whose encoders "
                                                     "are run side by side, frames concatenated.")] = None,
    name: Annotated[str | None, typer.Option(help="Model name, with --concat.")] = None,
) -> None:
    """Export the encoder (frontend + weights, no heads) to safetensors and ONNX, check ONNX against torch,
    refuse a collapsed encoder, evaluate it beside the baselines and write its model card."""
    from audioemb.registry import resolve
    from audioemb.train.package import package_concat, package_run

    if concat:
        if run is not None or not name:
            raise typer.BadParameter("--concat takes model folders or names and needs --name, and no RUN")
        cfg = package_concat([resolve(c) for c in concat], out, name, corpus, evaluate=evaluate, log=typer.echo)
    else:
        if run is None:
            raise typer.BadParameter("give a RUN folder, or --concat with --name")
        cfg = package_run(run, out, corpus, evaluate=evaluate, log=typer.echo)
    typer.echo(f"exported {cfg['name']} -> {out}")
