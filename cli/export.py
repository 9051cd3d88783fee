"""``audioemb export RUN -o OUT``: a trained run -> a model folder with ONNX, figures and card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    run: Annotated[Path | None, typer.Argument(help="Run folder written by `audioemb train`.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (e.g. models/my-model).")] = ...,
    name: Annotated[str | None, typer.Option(help="Model name (default: the run's name, e.g. byol-s.mysounds; a "
                                             "run on your own folders that kept a corpus name like .debian2 takes "
                                             "the --out folder's name).")] = None,
    corpus: Annotated[Path | None, typer.Option(help="Score on this corpus's held-out tasks (tasks/*.csv); default: "
                                                "the corpus a corpus run trained on. Without one, the card says "
                                                "there are no corpus figures.")] = None,
    eval_data: Annotated[Path | None, typer.Option("--eval", help="Your labelled held-out clips: a CSV "
                                                   "(path,label[,group]) or a folder of class sub-folders; scored "
                                                   "beside the starting model, random init and log-mel statistics."
                                                   )] = None,
    evaluate: Annotated[bool, typer.Option(help="Score the model for its card (--no-evaluate: skip).")] = True,
    seeds: Annotated[int, typer.Option(min=1, help="Random seeds of the random-init baseline.")] = 3,
    concat: Annotated[list[str] | None, typer.Option(help="Instead of RUN: model folders or names whose encoders "
                                                     "are run side by side, frames concatenated.")] = None,
    from_model: Annotated[str | None, typer.Option("--from", help="Instead of RUN: a model folder or name to "
                                                   "re-export with another --readout, its weights unchanged.")] = None,
    readout: Annotated[str | None, typer.Option(help="With --from: the AudioNTT readout, mlp, concat or "
                                                "concat_fine (conv features at 4x the frequency rows), or the "
                                                "FrameNet readout, context or latents (the conv latents).")] = None,
    standardize: Annotated[int | None, typer.Option(
        help="With --from and --corpus (the corpus the model trained on, or any folder of audio): add an embedding "
        "standardiser fitted on this many of its training clips or files (1024 is a good count), the weights "
        "unchanged.", min=2)] = None,
    quantize: Annotated[list[str] | None, typer.Option(
        "--quantize", help="Also write a smaller variant beside OUT (OUT-int8, OUT-fp16), with its parity, "
        "speed and quality cost against the float model in its card (repeatable).")] = None,
) -> None:
    """Export the encoder (frontend + weights, no heads) to safetensors and ONNX, check ONNX against torch,
    refuse a collapsed encoder, evaluate it beside the baselines and write its model card. The folder is
    built beside OUT and renamed into place at the end: an interrupted export leaves nothing half-written."""
    from ._errors import fail

    try:
        from audioemb.train.package import package_concat, package_run
    except ImportError:
        fail("export needs torch, which is not installed: pip install 'audioemb[train]'")
    if standardize is not None:
        if from_model is None or readout is not None or run is not None or concat or corpus is None:
            fail("--standardize N goes with --from MODEL and --corpus CORPUS (or a folder of audio), without RUN, "
                 "--readout or --concat")
        from audioemb.train.standardize import package_standardized

        cfg = package_standardized(from_model, out, corpus, standardize, evaluate=evaluate, name=name,
                                   log=typer.echo, seeds=seeds)
    elif from_model is not None or readout is not None:
        if from_model is None or readout is None or run is not None or concat:
            fail("--from MODEL and --readout NAME go together, without RUN or --concat")
        from audioemb.train.repackage import package_readout

        cfg = package_readout(from_model, out, readout, corpus, evaluate=evaluate, name=name, log=typer.echo,
                              seeds=seeds)
    elif concat:
        if run is not None or not name or corpus is None:
            fail("--concat takes model folders or names and needs --name and --corpus, and no RUN")
        from audioemb.registry import resolve

        cfg = package_concat([resolve(c) for c in concat], out, name, corpus, evaluate=evaluate, log=typer.echo)
    else:
        if run is None:
            fail("give a RUN folder (the --out of `audioemb train`), or --concat with --name")
        cfg = package_run(run, out, corpus, evaluate=evaluate, log=typer.echo, name=name, eval_data=eval_data,
                          seeds=seeds)
    typer.echo(f"exported {cfg['name']} -> {out}")
    for kind in quantize or []:
        from audioemb.errors import AudioembError
        from audioemb.quantize import quantize_model

        dst = out.with_name(f"{out.name}-{kind}")
        try:
            q = quantize_model(out, dst, kind, corpus=corpus if evaluate else None, log=typer.echo)
        except (AudioembError, ValueError) as e:
            fail(f"--quantize {kind}: {e}")
        typer.echo(f"wrote the {kind} variant {q['name']} -> {dst}")
