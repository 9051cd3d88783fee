"""The ``audioemb`` command line: one module per command; each parses arguments and calls the library.

Installed as ``audioemb.cli`` (the repository's top-level ``cli/`` folder). Heavy imports (numpy,
onnxruntime, torch) happen inside the commands, so ``audioemb --help`` starts fast.
"""

from __future__ import annotations

import typer

from . import cluster, corpus, embed, evaluate, export, index, models, push, quantize, results, search, serve, train

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
app.command("eval")(evaluate.evaluate)
app.command("results")(results.results)
app.add_typer(corpus.app, name="corpus")
app.add_typer(index.app, name="index")
app.command("search")(search.search)
app.command("cluster")(cluster.cluster)
app.command("serve")(serve.serve)
app.command("push")(push.push)
app.command("quantize")(quantize.quantize)


def main() -> None:
    app()
