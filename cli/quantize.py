"""``audioemb quantize MODEL -o OUT --to int8|fp16``: a smaller model variant, measured against the float one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def quantize(
    model: Annotated[str, typer.Argument(help="Model name or folder (float32).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")],
    to: Annotated[str, typer.Option("--to", help="int8 (dynamic weight quantization) or fp16.")] = "int8",
    clips: Annotated[Path | None, typer.Option(help="Folder of audio to measure parity and speed on (default: the "
                                               "example clips).")] = None,
    corpus: Annotated[Path | None, typer.Option(help="A corpus folder: also score both models on its held-out "
                                                "tasks (the \\[eval] extra).")] = None,
    tasks: Annotated[list[str] | None, typer.Option("--task", help="With --corpus: score only this held-out "
                                                    "task (repeatable; default all).")] = None,
    conv: Annotated[bool, typer.Option("--conv", help="int8: quantize convolutions too (smaller; onnxruntime's "
                                       "CPU ConvInteger is much slower).")] = False,
) -> None:
    """Write the variant with its config, card and measured parity, speed and (with --corpus) quality cost."""
    from audioemb.quantize import quantize_model

    from ._errors import input_errors

    with input_errors(FileNotFoundError, ValueError):
        cfg = quantize_model(model, out, to, clips=clips, corpus=corpus, conv=conv, tasks=tasks, log=typer.echo)
    q = cfg["quantization"]
    typer.echo(f"wrote {cfg['name']} -> {out}: {q['size_mb']:.2f} MB ({q['size_ratio']:.2f}x of float), "
               f"cosine to float {q['parity']['cosine_min']:.4f} min, speed {q['speed']['speedup']:.2f}x")
