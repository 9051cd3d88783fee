"""``audioemb cluster SOURCE -o OUT``: cluster an embed output or an index (k-means or local aggregation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def cluster(
    source: Annotated[Path, typer.Argument(help="An `audioemb embed` output folder (local or Ray shards) or an "
                                           "index folder; either is read as the clustering goes, so it may be "
                                           "larger than memory (an embed output is first copied to TMPDIR).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: assignments.csv, exemplars.json, "
                                      "summary.json, map.json, map.html, map.png.")],
    method: Annotated[str, typer.Option(help="kmeans (spherical, faiss) or local-aggregation (Zhuang et al. "
                                        "2019: adapt a projection, then k-means).")] = "kmeans",
    k: Annotated[int | None, typer.Option("-k", "--k", min=1, help="Number of clusters (default: chosen from "
                                          "2..50 with a floor of min(10, sqrt(N/2)), see --criterion).")] = None,
    criterion: Annotated[str, typer.Option(help="How automatic k is scored: silhouette, calinski-harabasz or "
                                           "davies-bouldin.")] = "silhouette",
    eval_labels: Annotated[Path | None, typer.Option("--eval", help="CSV with columns path,label: report NMI, "
                                                     "ARI and purity (the \\[eval] extra).")] = None,
    root: Annotated[Path | None, typer.Option(help="The audio folder an embed output was made from, so that "
                                              "map.html can play the sounds (an index knows its own).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of tables.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Cluster a collection; prints each cluster's name, size and exemplars (the items nearest its centre)."""
    import json

    from audioemb.cluster_report import cluster_collection

    from ._errors import fail, input_errors
    from ._progress import progress_bar

    if eval_labels is not None:  # before any work: a missing extra found after clustering left half an output
        import importlib.util

        if importlib.util.find_spec("sklearn") is None:
            fail("sklearn is not installed; --eval needs the [eval] extra: pip install 'audioemb[eval]'")
    try:
        with progress_bar(progress and not json_out) as step, input_errors(FileNotFoundError, ValueError, KeyError):
            s = cluster_collection(source, out, method=method, k=k, eval_labels=eval_labels, seed=seed,
                                   criterion=criterion, root=root, on_step=step)
    except ImportError as e:
        fail(f"{e.name or e} is not installed; --eval needs the [eval] extra: pip install 'audioemb[eval]'")
    if json_out:
        typer.echo(json.dumps(s, indent=1, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    sil = "n/a" if s["silhouette"] is None else f"{s['silhouette']:.3f}"
    how = f", k by {s['k_chosen_by']}" if s.get("k_chosen_by") else ""
    table = Table(title=f"{s['method']}: {s['n']} items, k={s['k']}{how}, silhouette {sil}")
    for col, just in (("cluster", "right"), ("name", "left"), ("size", "right"), ("exemplars", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for c, (name, size, ex) in enumerate(zip(s["names"], s["sizes"], s["exemplars"])):
        table.add_row(str(c), name, str(size), ", ".join(ex))
    console.print(table)
    if s.get("k_asked"):
        typer.echo(f"note: -k {s['k_asked']} is more than the {s['n']} items; clustered with k={s['k']}")
    if s["scores"]:
        ev = Table(title=f"against {eval_labels} ({s['eval']['n_labelled']} labelled items)")
        for col in ("method", "NMI", "ARI", "purity"):
            ev.add_column(col, justify="left" if col == "method" else "right")
        for name, sc in s["scores"].items():
            ev.add_row(name, f"{sc['nmi']:.3f}", f"{sc['ari']:.3f}", f"{sc['purity']:.3f}")
        console.print(ev)
    typer.echo(f"wrote {out}/{', '.join(s['outputs'])}")
    for name, why in s.get("outputs_missing", {}).items():
        typer.echo(f"no {name}: {why}")

