"""``audioemb train RECIPE``: train an encoder with one SSL objective (needs the [train] extra).

Also the entry point of ``torchrun --nproc_per_node N -m audioemb.train RECIPE ...`` (DDP).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from audioemb.train import list_recipes


def train(
    recipe: Annotated[str, typer.Argument(
        help=f"Recipe name or a recipe JSON file. Recipes: {', '.join(list_recipes())}.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: config, log and checkpoint; resumes.")],
    corpus: Annotated[Path | None, typer.Option(help="Corpus folder made by `audioemb corpus build`.")] = None,
    data: Annotated[list[Path] | None, typer.Option(
        "--data", help="A folder of any audio (recursive; repeat for several). Replaces --corpus.")] = None,
    init: Annotated[str | None, typer.Option(
        help="Start from this model (shipped name, folder or hf-hub:ORG/NAME): domain adaptation.")] = None,
    renormalise: Annotated[bool, typer.Option(
        "--renormalise", help="With --init: re-estimate the frontend's normalisation on the new data.")] = False,
    device: Annotated[str | None, typer.Option(help="auto (CUDA when available), cpu or cuda.")] = None,
    cache: Annotated[Path | None, typer.Option(
        help="Where --data audio is decoded to (default RUN/cache); never inside your folders.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe setting: key=value.")] = None,
) -> None:
    """Train (or resume) a run; checkpoints every few hundred steps, so a killed run loses little."""
    from audioemb.train.config import ConfigError
    from audioemb.train.recipes import load_recipe, name_for_data
    from audioemb.train.stopping import TrainingInterrupted
    from audioemb.train.trainer import Trainer

    from ._errors import fail

    overrides = list(set_ or []) + ([f"device={device}"] if device else [])
    trainer = None

    def on_term(signum, frame):  # before training (decoding the audio): unwind, so temporary files are removed
        raise TrainingInterrupted("stopped by SIGTERM before training started; run the same command again", signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        cfg = load_recipe(recipe, overrides)
        if not any(o.startswith("name=") for o in overrides):  # <objective>-<size>.<data-tag>
            cfg = name_for_data(cfg, corpus, data)
        if renormalise and not init:
            raise ConfigError("--renormalise needs --init MODEL")
        fixed = [o.split("=", 1)[0] for o in overrides if o.split("=", 1)[0].split(".")[0] in ("encoder", "frontend")]
        if init and fixed:  # apply_init takes both from the model
            raise ConfigError(f"--init {init} fixes the encoder and the frontend (they are the model's): drop "
                              f"--set {', --set '.join(fixed)}")
        if corpus is not None and data:
            raise ConfigError("give either --corpus or --data, not both")
        with _Progress() as progress:
            trainer = Trainer(cfg, corpus, out, log=progress.log, data=data, init=init, renormalise=renormalise,
                              cache=cache, progress=progress.update)
            if trainer.is_main:
                _record_command(out)
            result = trainer.fit()
    except (ValueError, FileNotFoundError) as e:  # ConfigError and DataError are AudioembErrors too
        fail(str(e))
    except TrainingInterrupted as e:  # SIGINT / SIGTERM: a checkpoint of the last step is saved
        if trainer is None or trainer.is_main:
            typer.echo(str(e), err=True)
        raise typer.Exit(e.exit_code) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        from audioemb.nn.distributed import shutdown

        shutdown()
    if trainer.is_main:
        left = trainer.cfg.steps - result["steps"]  # stop_at: a stage of a longer run
        more = f" of {trainer.cfg.steps} (stopped at stop_at; not finished: run it again to go on)" if left > 0 else ""
        typer.echo(f"trained {cfg.name}: {result['steps']} steps{more}, {result['wall_s'] / 60:.1f} min -> {out}")


class _Progress:
    """A rich progress bar (loss, views/s, ETA) on a terminal; plain log lines otherwise (nohup, CI)."""

    def __init__(self):
        self.bar = None
        if sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[info]}"),
                                TimeRemainingColumn(), transient=False)
        self.task = None
        self.first: tuple[int, float] | None = None  # (step, wall_s) of this process's first record

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def log(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.console.print(msg)
        else:
            typer.echo(msg)

    def update(self, rec: dict) -> None:
        info = f"loss {rec['loss']:.4f}  {rec['views_per_s']:.0f} views/s  collapse_std {rec['collapse_std']:.2f}"
        if self.bar is None:
            typer.echo(f"step {rec['step']}/{rec['steps']} {info}  {rec['wall_s'] / 60:.1f} min{self.eta(rec)}")
            return
        if self.task is None:
            self.task = self.bar.add_task("train", total=rec["steps"], info=info)
        self.bar.update(self.task, completed=rec["step"], info=info)


    def eta(self, rec: dict) -> str:
        """``  ETA N min`` from this process's pace so far (a resumed run's earlier pace does not count)."""
        if self.first is None:
            self.first = (rec["step"], rec["wall_s"])
            return ""
        done, spent = rec["step"] - self.first[0], rec["wall_s"] - self.first[1]
        if done <= 0 or spent <= 0:
            return ""
        return f"  ETA {(rec['steps'] - rec['step']) * spent / done / 60:.1f} min"


def _record_command(run_dir: Path) -> None:
    """Keep the command that started the run (the model card quotes it): the first one that got as far as a
    checkpoint. Until then each attempt replaces it (a first attempt may fail before it trains at all)."""
    import datetime as dt
    import shlex

    from audioemb.fsio import atomic_write_json

    run_dir.mkdir(parents=True, exist_ok=True)
    p = run_dir / "command.json"
    if not p.exists() or not (run_dir / "checkpoint.safetensors").exists():
        argv = sys.argv[1:] if Path(sys.argv[0]).name == "audioemb" else ["train", *sys.argv[1:]]
        atomic_write_json(p, {"argv": "audioemb " + shlex.join(argv), "cwd": os.getcwd(),
                              "started": dt.datetime.now().isoformat(timespec="seconds")}, indent=None)


def main() -> None:
    """``python -m audioemb.train ...`` (what torchrun runs in each process)."""
    from ._errors import one_line_errors

    typer.run(one_line_errors(train))
