"""``audioemb export RUN -o FOLDER``: a trained run -> a model folder with ONNX, figures and card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    run: Annotated[Path, typer.Argument(help="Run folder written by `audioemb train`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (e.g. pretrained/NAME).")],
    corpus: Annotated[Path, typer.Option(help="The corpus the run trained on (held-out clips and tasks).")],
    evaluate: Annotated[bool, typer.Option(help="Score on the corpus's held-out tasks for the card.")] = True,
) -> None:
    """Export the encoder (frontend + weights, no heads) to safetensors and ONNX, check ONNX against torch,
    refuse a collapsed encoder, evaluate it beside the baselines and write its model card."""
    from audioemb.train.package import package_run

    cfg = package_run(run, out, corpus, evaluate=evaluate, log=typer.echo)
    typer.echo(f"exported {cfg['name']} -> {out}")
