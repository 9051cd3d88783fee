"""``audioemb corpus build``: the training corpus and evaluation tasks from Debian packages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Build the training corpus from Debian packages.", no_args_is_help=True)


@app.command("build")
def build(
    out: Annotated[Path, typer.Argument(help="Corpus folder to write.")],
    cache: Annotated[Path, typer.Option(help="Where .deb files are downloaded and unpacked.")] = Path(
        "~/.cache/audioemb/debian"),
    workers: Annotated[int, typer.Option(help="Decoding processes.")] = 2,
    version: Annotated[int, typer.Option(
        help="Recipe version: 1 (data tag debian) or 2 (debian2: v1 plus soundtracks, sound packs, "
             "festival voices, more soundfonts).")] = 1,
    reuse: Annotated[list[Path] | None, typer.Option(
        help="An earlier corpus whose audio/ was copied or hard-linked into OUT (cp -al OLD/audio OUT/): "
             "its manifest gives those clips' rows without decoding. Repeatable.")] = None,
) -> None:
    """Download the recipe's Debian packages, render espeak-ng and fluidsynth audio, write 16 kHz clips,
    the manifest and the task CSVs. Deterministic for the same package versions."""
    from audioemb.corpus.build import build as run

    from ._errors import input_errors

    with input_errors(ValueError, RuntimeError, exit_code=1):  # a package or render that failed
        run(out.expanduser(), cache.expanduser(), workers=workers, version=version,
            reuse=tuple(p.expanduser() for p in reuse or ()))
