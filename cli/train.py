"""``audioemb train RECIPE``: train an encoder with one SSL objective (needs the [train] extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def train(
    recipe: Annotated[str, typer.Argument(help="Recipe name (see audioemb/train/recipes/) or a recipe JSON file.")],
    corpus: Annotated[Path, typer.Option(help="Corpus folder made by `audioemb corpus build`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: config, log and checkpoint; resumes.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe setting: key=value.")] = None,
) -> None:
    """Train (or resume) a run; checkpoints every few hundred steps, so a killed run loses little."""
    from audioemb.train.recipes import load_recipe
    from audioemb.train.trainer import Trainer

    cfg = load_recipe(recipe, set_)
    _record_command(out)
    result = Trainer(cfg, corpus, out).fit()
    typer.echo(f"trained {cfg.name}: {result['steps']} steps, {result['wall_s'] / 60:.1f} min -> {out}")


def _record_command(run_dir: Path) -> None:
    """Keep the command that started the run (the model card quotes it)."""
    import datetime as dt
    import json
    import shlex
    import sys

    run_dir.mkdir(parents=True, exist_ok=True)
    p = run_dir / "command.json"
    if not p.exists():
        p.write_text(json.dumps({"argv": "audioemb " + shlex.join(sys.argv[1:]),
                                 "started": dt.datetime.now().isoformat(timespec="seconds")}) + "\n")
