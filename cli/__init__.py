"""The ``audioemb`` command line: one module per command; each parses arguments and calls the library.

Installed as ``audioemb.cli`` (the repository's top-level ``cli/`` folder). Heavy imports (numpy,
onnxruntime, torch) happen inside the commands, so ``audioemb --help`` starts fast.
"""

from __future__ import annotations

import typer

from . import corpus, embed, export, models, train

app = typer.Typer(
    name="audioemb",
    help="Self-supervised audio embeddings: embed, search and cluster audio collections.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("embed")(embed.embed)
app.command("models")(models.models)
app.command("train")(train.train)
app.command("export")(export.export)
app.add_typer(corpus.app, name="corpus")


def main() -> None:
    app()
