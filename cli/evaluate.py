"""``audioemb eval DATA``: score models on a labelled collection beside the baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def evaluate(
    data: Annotated[Path, typer.Argument(help="A CSV (path,label[,group]), a folder of class sub-folders, or a "
                                         "corpus folder (all of its tasks/*.csv).")],
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Model name or folder; repeatable "
                                                    "(default: the default model); a second model of the same "
                                                    "name is shown as 'NAME (FOLDER)'.")] = None,
    layer: Annotated[str | None, typer.Option(help="Score this layer (an index or 'mean'); 'all' scores every "
                                              "layer of each model.")] = None,
    baselines: Annotated[bool, typer.Option(help="Also score log-mel mean+std and each model's random-init "
                                            "encoder (needs torch).")] = True,
    seeds: Annotated[int, typer.Option(min=1, help="Random seeds of each random-init baseline (mean ± std).")] = 3,
    corpus: Annotated[Path | None, typer.Option(help="The corpus (or folder of audio) a standardised model's "
                                                "embedding statistics were fitted on, to fit its random-init "
                                                "baseline the same way (default: DATA, when it is a corpus "
                                                "folder).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full results as JSON here.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on a terminal); each model's scores on each "
                                           "set are printed as they are done.")] = True,
) -> None:
    """Linear probe (5-fold CV, grouped when the data has groups), few-shot probe (5 examples per class, 20
    draws), kNN precision@10 and retrieval mAP on cosine similarity. Prints one table per metric."""
    import sys

    from audioemb.eval.data import check_classes, drop_unreadable, load_labelled
    from audioemb.eval.run import METRIC_TITLES, corpus_tasks, format_table
    from audioemb.eval.run import evaluate as run

    from ._errors import fail
    from ._progress import progress_bar

    if not data.exists():
        fail(f"{data}: no such file or folder")
    if json_out is not None:  # before the run, not after it (its results were lost to a missing folder)
        json_out.parent.mkdir(parents=True, exist_ok=True)
    if layer not in (None, "all", "mean") and not layer.lstrip("-").isdigit():
        fail(f"--layer {layer}: give a layer index, 'mean' or 'all'")
    try:
        own = not (data / "tasks").is_dir()  # a user's set is decoded once up front: one bad file skips, not stops
        datasets = [load_labelled(data)] if own else corpus_tasks(data)
        checked = []
        for ds in datasets:
            ds, bad = drop_unreadable(ds, decode=own)
            for msg in bad:
                typer.echo(f"skipped {msg}", err=True)
            check_classes(ds, data)
            checked.append(ds)
        fit = tuple(c for c in (corpus, data if (data / "tasks").is_dir() else None) if c is not None)
        models = _models(model or [None], layer, baselines, seeds, fit)  # a chosen layer is in each row's name
        with progress_bar(progress and sys.stderr.isatty()) as step:
            result = run(models, checked, batch_size=batch_size, log=lambda s: typer.echo(s, err=True),
                         progress=step)
    except ValueError as e:  # a bad CSV or layer; AudioError and ModelFolderError are AudioembErrors
        fail(str(e))
    for metric, title in METRIC_TITLES.items():
        typer.echo(f"\n{title}\n{format_table(result, metric)}")
    if json_out:
        from audioemb.fsio import atomic_write_json

        atomic_write_json(json_out, result, indent=1)
        typer.echo(f"\nwrote {json_out}")


def _models(names: list[str | None], layer: str | None, baselines: bool, seeds: int, corpora: tuple = ()) -> list:
    from audioemb.eval.run import LayerView, distinct_name, layer_views
    from audioemb.runtime import load

    def views(m) -> list:  # each random-init seed is read out from the same layers; rows are named <model>@layer<i>
        if layer is None:
            return [m]
        return layer_views(m) if layer == "all" else [LayerView(m, layer if layer == "mean" else int(layer))]

    out, labels = [], []
    for n in names:
        m = load(n)
        m.name = distinct_name(m.name, n, labels)
        labels.append(m.name)
        out.extend(views(m))
    if baselines:
        from audioemb.errors import AudioembError
        from audioemb.eval.baselines import LogMelStats, random_init_models

        try:
            for n, label in zip(names, labels):
                try:
                    out.extend(v for m in random_init_models(n, seeds, corpora=corpora, label=label)
                               for v in views(m))
                except AudioembError as e:  # a standardised model whose fitting corpus was not given
                    typer.echo(f"(random-init baseline of {n or 'the default model'} skipped: {e})", err=True)
        except ImportError:
            typer.echo("(random-init baseline skipped: it needs torch, the [train] extra)", err=True)
        out.append(LogMelStats(out[0].config["frontend"] if hasattr(out[0], "config") else None))
    return out
