"""The ``audioemb`` command line: one module per command; each parses arguments and calls the library.

Installed as ``audioemb.cli`` (the repository's top-level ``cli/`` folder). Heavy imports (numpy,
onnxruntime, torch) happen inside the commands, so ``audioemb --help`` starts fast.

One error handler serves every command (:func:`._errors.one_line_errors`): a user's mistake raises an
:class:`audioemb.errors.AudioembError`, printed as one ``error: ...`` line on stderr, never a traceback.
Exit codes are the same everywhere: 0 ok, 1 some inputs failed (each reported), 2 usage or input error.
"""

from __future__ import annotations

import typer

from . import cluster, corpus, embed, evaluate, export, index, models, push, quantize, results, search, serve, train
from ._errors import one_line_errors

app = typer.Typer(
    name="audioemb",
    help="Self-supervised audio embeddings: embed, search and cluster audio collections.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


for _name, _command in (("embed", embed.embed), ("models", models.models), ("train", train.train),
                        ("export", export.export), ("eval", evaluate.evaluate), ("results", results.results),
                        ("search", search.search), ("cluster", cluster.cluster), ("serve", serve.serve),
                        ("push", push.push), ("quantize", quantize.quantize)):
    app.command(_name)(one_line_errors(_command))
for _group, _sub in (("corpus", corpus.app), ("index", index.app)):
    for _info in _sub.registered_commands:
        _info.callback = one_line_errors(_info.callback)
    app.add_typer(_sub, name=_group)


def main() -> None:
    app()
