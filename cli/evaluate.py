"""``audioemb eval DATA``: score models on a labelled collection beside the baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def evaluate(
    data: Annotated[Path, typer.Argument(help="A CSV (path,label[,group]), a folder of class sub-folders, or a "
                                         "corpus folder (all of its tasks/*.csv).")],
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Model name or folder; repeatable "
                                                    "(default: the default model).")] = None,
    layer: Annotated[str | None, typer.Option(help="Score this layer (an index or 'mean'); 'all' scores every "
                                              "layer of each model.")] = None,
    baselines: Annotated[bool, typer.Option(help="Also score log-mel mean+std and each model's random-init "
                                            "encoder (needs torch).")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full results as JSON here.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
) -> None:
    """Linear probe (5-fold CV, grouped when the data has groups), kNN precision@10 and retrieval mAP on cosine
    similarity. Prints one table per metric."""
    import json

    from audioemb.eval.data import load_labelled
    from audioemb.eval.run import corpus_tasks, format_table
    from audioemb.eval.run import evaluate as run

    datasets = corpus_tasks(data) if (data / "tasks").is_dir() else [load_labelled(data)]
    models = _models(model or [None], layer, baselines)
    lay = None if layer in (None, "all") else (layer if layer == "mean" else int(layer))
    result = run(models, datasets, batch_size=batch_size, log=lambda s: typer.echo(s, err=True), layer=lay)
    for metric, title in (("probe_acc", "linear probe accuracy"), ("knn_p10", "kNN precision@10"),
                          ("map", "retrieval mAP")):
        typer.echo(f"\n{title}\n{format_table(result, metric)}")
    if json_out:
        json_out.write_text(json.dumps(result, indent=1))
        typer.echo(f"\nwrote {json_out}")


def _models(names: list[str | None], layer: str | None, baselines: bool) -> list:
    from audioemb.eval.run import LayerView
    from audioemb.runtime import load

    out = []
    for n in names:
        m = load(n)
        if layer == "all":
            out.extend(LayerView(m, i) for i in range(m.n_layers))
            out.append(LayerView(m, "mean"))
        else:
            out.append(m)
    if baselines:
        from audioemb.eval.baselines import LogMelStats, random_init_model

        try:
            out.extend(random_init_model(n) for n in names)
        except ImportError:
            typer.echo("(random-init baseline skipped: it needs torch, the [train] extra)", err=True)
        out.append(LogMelStats(out[0].config["frontend"] if hasattr(out[0], "config") else None))
    return out
