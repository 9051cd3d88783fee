"""``audioemb push MODEL_FOLDER hf-hub:ORG/NAME``: upload a model folder to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def push(
    folder: Annotated[Path, typer.Argument(help="A model folder (config.json, model.onnx, model.safetensors, "
                                           "README.md).")],
    repo: Annotated[str, typer.Argument(help="hf-hub:ORG/NAME")],
    revision: Annotated[str | None, typer.Option(help="Branch to push to (created from main if missing).")] = None,
    private: Annotated[bool, typer.Option(help="Create the repository as private.")] = False,
    message: Annotated[str | None, typer.Option(help="Commit message.")] = None,
) -> None:
    """Check the folder, add hub metadata to its card and upload it; prints the commit and how to load it."""
    from audioemb.hub import push_model

    from ._errors import input_errors

    with input_errors(FileNotFoundError, ValueError):
        r = push_model(folder, repo, revision=revision, private=private, message=message)
    typer.echo(f"pushed {', '.join(r['files'])} to {r['repo_id']}@{r['revision']} (commit {r['commit'][:12]})")
    typer.echo(f"load it with: audioemb.load(\"hf-hub:{r['repo_id']}@{r['commit']}\")")
