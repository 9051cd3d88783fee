"""``audioemb cluster SOURCE -o OUT``: cluster an embed output or an index (k-means or local aggregation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def cluster(
    source: Annotated[Path, typer.Argument(help="An `audioemb embed` output folder or an index folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: assignments.csv, exemplars.json, "
                                      "summary.json, map.png.")],
    method: Annotated[str, typer.Option(help="kmeans (spherical, faiss) or local-aggregation (Zhuang et al. "
                                        "2019: adapt a projection, then k-means).")] = "kmeans",
    k: Annotated[int | None, typer.Option("-k", "--k", min=1, help="Number of clusters (default: best "
                                          "silhouette over 2..30).")] = None,
    eval_labels: Annotated[Path | None, typer.Option("--eval", help="CSV with columns path,label: report NMI, "
                                                     "ARI and purity.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Cluster a collection; prints cluster sizes and exemplars (the items nearest each centre)."""
    from audioemb.cluster import cluster_collection
    from audioemb.index import IndexStoreError

    try:
        s = cluster_collection(source, out, method=method, k=k, eval_labels=eval_labels, seed=seed)
    except (IndexStoreError, FileNotFoundError, ValueError, KeyError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    from rich.console import Console
    from rich.table import Table

    console = Console()
    sil = "n/a" if s["silhouette"] is None else f"{s['silhouette']:.3f}"
    table = Table(title=f"{s['method']}: {s['n']} items, k={s['k']}, silhouette {sil}")
    for col, just in (("cluster", "right"), ("size", "right"), ("exemplars", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for c, (size, ex) in enumerate(zip(s["sizes"], s["exemplars"])):
        table.add_row(str(c), str(size), ", ".join(ex))
    console.print(table)
    if s["scores"]:
        ev = Table(title=f"against {eval_labels} ({s['eval']['n_labelled']} labelled items)")
        for col in ("method", "NMI", "ARI", "purity"):
            ev.add_column(col, justify="left" if col == "method" else "right")
        for name, sc in s["scores"].items():
            ev.add_row(name, f"{sc['nmi']:.3f}", f"{sc['ari']:.3f}", f"{sc['purity']:.3f}")
        console.print(ev)
    typer.echo(f"wrote {out}/assignments.csv, exemplars.json, summary.json, map.png")
