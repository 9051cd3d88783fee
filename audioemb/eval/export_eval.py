"""The figures `audioemb export` puts in a card: corpus tasks and the user's own labelled data (``--eval``),
each beside the starting model (of an ``--init`` run), the encoder untrained (several seeds) and log-mel
statistics."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import AudioembError
from .data import LabelledSet, check_classes, drop_unreadable, load_labelled

PROTOCOL = ("audioemb eval: 5-fold linear probe (grouped), few-shot prototype probe (5 per class, 20 draws, grouped), "
            "kNN precision@10 and mAP on cosine similarity, same-group neighbours excluded; random init: mean over "
            "seeds")
REFERENCE_MODEL = "byol-s.debian2"  # corpus cards also show BYOL's and the default model's stored figures


class ExportError(AudioembError, ValueError):
    """A run or an option that cannot be exported as given; the message says which and why, in one line."""


def resolve_corpus(corpus: Path | None, data: dict | None, log=print) -> Path | None:
    """The corpus an export uses (its held-out tasks, its clips for the collapse check, its card data): the one
    given, else the corpus a corpus run trained on when it still exists."""
    if corpus is not None:
        corpus = Path(corpus)
        if not corpus.is_dir():
            raise ExportError(f"--corpus {corpus}: no such folder")
        if not (corpus / "recipe.json").is_file():  # scored on nothing, with a note, before
            raise ExportError(f"--corpus {corpus}: not a corpus built by `audioemb corpus build` (no recipe.json); "
                              "for labelled clips of your own use --eval")
        return corpus
    if data and data.get("kind") == "corpus" and data.get("corpus") and Path(data["corpus"]).is_dir():
        log(f"using the corpus the run trained on: {data['corpus']}")
        return Path(data["corpus"])
    return None


def open_eval_data(src: Path, log=print) -> LabelledSet:
    """The ``--eval`` set (CSV path,label[,group] or a folder of class sub-folders), checked up front:
    unreadable files are reported and left out."""
    src = Path(src)
    if not src.exists():
        raise ExportError(f"--eval {src}: no such file or folder")
    try:
        ds = load_labelled(src)
    except (ValueError, OSError, KeyError) as e:
        raise ExportError(f"--eval {e}") from None
    ds, bad = drop_unreadable(ds)
    for msg in bad:
        log(f"--eval: skipped {msg}")
    try:
        check_classes(ds, f"--eval {src}")
    except ValueError as e:
        raise ExportError(str(e)) from None
    return ds


def labelled_sha256(ds: LabelledSet) -> str:
    """sha256 of a labelled set as the card records it: each file's path relative to the set's common folder,
    its size, label and group, in order; the same set copied elsewhere has the same hash."""
    import os

    from .run import dataset_key

    root = os.path.commonpath([str(p) for p in ds.paths]) if len(ds.paths) > 1 else str(Path(ds.paths[0]).parent)
    return dataset_key(ds, relative_to=root)


def corpus_task_files(corpus: Path | None) -> list[Path]:
    return sorted((Path(corpus) / "tasks").glob("*.csv")) if corpus is not None else []


def _start_model(init: dict | None, name: str, log):
    """The starting model of an ``--init`` run, when it is still available with the same weights."""
    from ..modelfolder import ModelFolderError
    from .baselines import trained_model

    if not init:
        return None
    want = (init.get("sha256") or {}).get("model.safetensors")
    for ref in (init.get("model"), init.get("resolved")):
        if not ref:
            continue
        try:
            m = trained_model(ref)
        except (ModelFolderError, OSError, ValueError):
            continue
        if want and m.folder.model_config.files.get("model.safetensors") != want:
            log(f"the starting model {ref} has other weights now than the run started from; not scored beside it")
            return None
        if m.name == name:
            m.name = f"{name} (starting model)"
        return m
    log(f"the starting model {init.get('model')} is not available here; not scored beside it")
    return None


def _cache(root: Path | None):
    from .run import EvalCache

    if root is None:
        return None
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return EvalCache(root) if os.access(root, os.W_OK) else None


def _add_reference(result: dict, name: str) -> None:
    """Put BYOL's and the default model's stored figures beside a new model's, when measured on the same tasks."""
    from ..registry import DEFAULT_MODEL, model_configs

    for ref_name in dict.fromkeys([REFERENCE_MODEL, DEFAULT_MODEL]):
        if ref_name == name or ref_name in result["results"]:
            continue
        for cfg in model_configs(ref_name).values():  # empty when that model isn't shipped
            if cfg.metrics.heldout_tasks == result["tasks"] and ref_name in cfg.metrics.results:
                result["results"][ref_name] = cfg.metrics.results[ref_name]


def evaluate_export(folder: Path, name: str, corpus: Path | None, eval_set: LabelledSet | None,
                    init: dict | None, run_dir: Path | None, log=print, seeds: int | None = None) -> dict:
    """``config["metrics"]`` of an exported model folder: corpus tasks (``heldout_tasks``, ``results``) or
    ``no_corpus`` saying why there are none, and ``user_eval`` for the ``--eval`` set."""
    from .baselines import RANDOM_SEEDS, LogMelStats, random_init_models, trained_model
    from .run import corpus_tasks, evaluate

    own = trained_model(folder)
    start = _start_model(init, name, log)
    corpus_cache = _cache(Path(corpus) / "cache" / "eval") if corpus_task_files(corpus) else None
    onnx_dir = corpus_cache.root / "random-init-onnx" if corpus_cache else None  # faster on many clips
    models = [own, *([start] if start else []), *random_init_models(folder, seeds or RANDOM_SEEDS, onnx_dir,
                                                                          corpora=(corpus,)),
              LogMelStats(own.config["frontend"])]
    metrics: dict = {"protocol": PROTOCOL}
    if corpus_task_files(corpus):
        result = evaluate(models, corpus_tasks(corpus), log=log, cache=corpus_cache)
        _add_reference(result, name)
        metrics.update(heldout_tasks=result["tasks"], results=result["results"], corpus=f"`{Path(corpus).name}`")
    else:
        metrics["no_corpus"] = (f"the corpus `{Path(corpus).name}` has no held-out task files (tasks/*.csv)"
                                if corpus is not None else "exported without a corpus (no --corpus), so there are no "
                                "corpus held-out figures")
        log(f"no corpus figures: {metrics['no_corpus']}")
    if eval_set is not None:
        result = evaluate(models, [eval_set], log=log,
                          cache=_cache(Path(run_dir) / "cache" / "eval") if run_dir is not None else None)
        metrics["user_eval"] = {"source": eval_set.name, "sha256": labelled_sha256(eval_set), "tasks": result["tasks"],
                                "results": result["results"], "start": start.name if start else None}
    return metrics
