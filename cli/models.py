"""``audioemb models``: the shipped models and their measured figures."""

from __future__ import annotations

from typing import Annotated

import typer


def models(
    pattern: Annotated[str, typer.Argument(help="Glob over model names, e.g. 'byol*'.")] = "*",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List shipped models: name, objective, dims, parameters, size on disk, and held-out probe accuracy.

    Names are never cut: on a narrow terminal (or piped, 80 columns) the task columns that do not fit are left
    out, and a line says which; --json has everything."""
    import json
    import textwrap

    from audioemb.registry import DEFAULT_MODEL, list_models, model_configs, pretrained_dir

    from ._errors import fail

    if not list_models(pattern):
        fail(f"no shipped model matches {pattern!r}; shipped: {', '.join(list_models())}")
    rows = []
    for name, cfg in model_configs(pattern).items():
        folder = pretrained_dir() / name
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        rows.append({"name": name, "default": name == DEFAULT_MODEL, "objective": cfg.objective_name,
                     "dim": cfg.embedding_dim, "frames_per_s": cfg.frame_rate_hz, "parameters": cfg.parameters,
                     "stored_parameters": cfg.trained_parameters, "size_mb": round(size / 1e6, 2),
                     "probe_acc": {t: r["probe_acc"] for t, r in cfg.metrics.of(name).items()}})
    if json_out:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    tasks = sorted({t for r in rows for t in r["probe_acc"]})
    columns = {"name": [r["name"] + (" *" if r["default"] else "") for r in rows],
               "objective": [str(r["objective"]) for r in rows], "dim": [str(r["dim"]) for r in rows],
               "params": [f"{(r['parameters'] or 0) / 1e6:.2f}M" + ("†" if _leaves_unrun(r) else "") for r in rows],
               "MB": [f"{r['size_mb']:.1f}" for r in rows],
               **{t: [f"{r['probe_acc'].get(t, float('nan')):.3f}" for r in rows] for t in tasks}}
    console = Console()
    shown, hidden = fit_columns(columns, console.width, droppable=["objective", *reversed(tasks), "MB", "params"])
    table = Table(title="audioemb models (held-out linear-probe accuracy; * = default)", title_justify="left")
    for col in shown:
        table.add_column(col.replace("-", "-\n"), justify="left" if col in ("name", "objective") else "right",
                         no_wrap=True, overflow="fold",
                         min_width=max(map(len, [col, *columns[col]])) if col == "name" else None)
    for i in range(len(rows)):
        table.add_row(*[columns[c][i] for c in shown])
    console.print(table, crop=False)
    if "params" in shown and any(map(_leaves_unrun, rows)):
        typer.echo(textwrap.fill("† the parameters its readout runs; its folder stores more (trained, not run): "
                                 + ", ".join(f"{r['name']} {r['stored_parameters'] / 1e6:.2f}M"
                                             for r in rows if _leaves_unrun(r)), console.width - 1,
                                 break_on_hyphens=False, break_long_words=False))
    if hidden:
        typer.echo(f"({len(hidden)} columns left out to fit {console.width} columns: {', '.join(hidden)}; "
                   "widen the terminal or use --json)")


def _leaves_unrun(row: dict) -> bool:
    return bool(row["parameters"]) and row["stored_parameters"] > row["parameters"]


def fit_columns(columns: dict[str, list[str]], width: int, droppable: list[str]) -> tuple[list[str], list[str]]:
    """(shown, hidden) column names: drop ``droppable`` ones, in order, until a boxed table fits ``width``
    (headers wrap at their hyphens)."""
    shown = list(columns)
    hidden: list[str] = []

    def needed() -> int:  # rich's box: one border and two padding cells per column, plus the last border
        return 1 + sum(3 + max(map(len, [*c.split("-"), *columns[c]])) for c in shown)

    for col in droppable:
        if needed() <= width - 2:  # a margin: rich shrinks a table that fills the width exactly
            break
        shown.remove(col)
        hidden.append(col)
    return shown, hidden
