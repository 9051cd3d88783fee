"""``audioemb models``: the shipped models and their measured figures."""

from __future__ import annotations

from typing import Annotated

import typer


def models(
    pattern: Annotated[str, typer.Argument(help="Glob over model names, e.g. 'byol*'.")] = "*",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List shipped models: name, objective, dims, parameters, size on disk, and held-out probe accuracy."""
    import json

    from audioemb.registry import DEFAULT_MODEL, model_configs, pretrained_dir

    rows = []
    for name, cfg in model_configs(pattern).items():
        folder = pretrained_dir() / name
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        res = cfg.get("metrics", {}).get("results", {}).get(name, {})
        rows.append({"name": name, "default": name == DEFAULT_MODEL,
                     "objective": cfg.get("objective", {}).get("name"), "dim": cfg["embedding_dim"],
                     "frames_per_s": cfg.get("frame_rate_hz"), "parameters": cfg.get("parameters"),
                     "size_mb": round(size / 1e6, 2),
                     "probe_acc": {t: r["probe_acc"] for t, r in res.items()}})
    if json_out:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    tasks = sorted({t for r in rows for t in r["probe_acc"]})
    table = Table(title="audioemb models (held-out linear-probe accuracy)")
    for col in ("name", "objective", "dim", "params", "MB", *tasks):
        table.add_column(col, justify="left" if col in ("name", "objective") else "right")
    for r in rows:
        table.add_row(r["name"] + (" (default)" if r["default"] else ""), str(r["objective"]), str(r["dim"]),
                      f"{(r['parameters'] or 0) / 1e6:.2f}M",
                      f"{r['size_mb']:.1f}", *[f"{r['probe_acc'].get(t, float('nan')):.3f}" for t in tasks])
    Console().print(table)
