"""A trained model folder re-exported with an embedding standardiser fitted on its training corpus
(``audioemb export --from MODEL --standardize --corpus CORPUS``), its encoder weights unchanged.

The standardiser (:mod:`audioemb.nn.embed_norm`) is fitted on the pooled embeddings of ``clips`` training
clips of the corpus the model trained on: a seed-0 permutation of the corpus's training split, the first
readable clips in that order, the first 10 s of each. ``embedding_norm`` in config.json records the corpus's
manifest hash, the hash of its training file list and the count, so the random-init baseline refits its own
standardiser on exactly those clips (:func:`refit_waves`): the comparison stays the same architecture, read out
the same way. A corpus rebuilt on another machine has the same training files but not always a byte-identical
manifest (docs/corpus.md), so the file list is what identifies it.

``--corpus`` may also be any folder of audio (a model trained on your own files with ``--data``, or a collection
you will search): the clips are then a seed-0 permutation of the folder's audio files, and the record keeps the
folder's name and the sha256 of its sorted file list instead of a manifest.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import AudioembError
from ..eval.export_eval import ExportError
from ..modelfolder import open_folder
from ..nn.embed_norm import STANDARDIZE, fit_standardizer
from ..nn.export import load_module
from .data import read_manifest
from .folders import file_list_sha256
from .package import _check_collapse, _decode, check_waves
from .repackage import write_reexport

FIT_CLIPS = 1024


def _manifest_sha(corpus: Path) -> str:
    recipe = Path(corpus) / "recipe.json"
    if not recipe.is_file() or not (Path(corpus) / "manifest.jsonl").is_file():
        raise ExportError(f"{corpus}: not a corpus built by `audioemb corpus build` (no recipe.json or manifest.jsonl)")
    return json.loads(recipe.read_text())["manifest_sha256"]


def is_corpus(path: Path) -> bool:
    """Whether ``path`` is a corpus built by ``audioemb corpus build`` (else a plain folder of audio)."""
    return (Path(path) / "recipe.json").is_file() and (Path(path) / "manifest.jsonl").is_file()


def _folder_files(folder: Path) -> tuple[list[Path], str]:
    from ..audio import find_audio

    files = find_audio(folder)
    if not files:
        raise ExportError(f"{folder}: no audio files in this folder (recursively), and not a corpus")
    return files, file_list_sha256([p.relative_to(folder).as_posix() for p in files])


def _plain_folder_sha(path: Path | None) -> str | None:
    """The file-list sha256 of a plain folder of audio; None for anything else (a corpus, a file, no audio)."""
    if path is None or not Path(path).is_dir() or is_corpus(Path(path)):
        return None
    try:
        return _folder_files(Path(path))[1]
    except ExportError:
        return None


def fit_waves(corpus: Path, clips: int, sample_rate: int) -> list[np.ndarray]:
    """The clips a standardiser is fitted on: ``clips`` readable clips of ``corpus``'s training split (or of a
    plain folder's audio files), in a seed-0 permutation, the first 10 s of each. The last set decoded is kept,
    so the random-init baseline's seeds, each refitted on the same clips, decode them once (treat the list as
    read-only)."""
    return _fit_waves(str(Path(corpus).resolve()), clips, sample_rate)


@functools.lru_cache(maxsize=4)
def train_list_sha(corpus: Path) -> str:
    """sha256 of ``corpus``'s training file list, as a training run's ``data.file_list_sha256`` records it."""
    return file_list_sha256([r["path"] for r in read_manifest(Path(corpus), "train")])


@functools.lru_cache(maxsize=1)
def _fit_waves(corpus: str, clips: int, sample_rate: int) -> list[np.ndarray]:
    if not is_corpus(Path(corpus)):
        return _decode(_folder_files(Path(corpus))[0], sample_rate, clips)
    rows = read_manifest(Path(corpus), "train")
    return _decode([Path(corpus) / r["path"] for r in rows], sample_rate, clips)


def norm_record(corpus: Path, clips: int) -> dict:
    """config.json's ``embedding_norm`` for a standardiser fitted by :func:`fit_waves`."""
    if not is_corpus(corpus):
        return {"type": STANDARDIZE, "folder": Path(corpus).name, "file_list_sha256": _folder_files(Path(corpus))[1],
                "clips": clips, "fitted_on": f"pooled embeddings of {clips} audio files of the folder "
                f"`{Path(corpus).name}` (a seed-0 permutation of its files, the first 10 s of each)"}
    return {"type": STANDARDIZE, "corpus": Path(corpus).name, "manifest_sha256": _manifest_sha(corpus),
            "file_list_sha256": train_list_sha(corpus), "split": "train", "clips": clips,
            "fitted_on": f"pooled embeddings of {clips} training clips of `{Path(corpus).name}` (a seed-0 "
                         "permutation of its training split, the first 10 s of each)"}


def same_corpus(corpus: Path, manifest_sha: str | None, file_list: str | None) -> bool:
    """Whether ``corpus`` is the corpus of that manifest hash, or of that training file list (a rebuild)."""
    if corpus is None or not is_corpus(Path(corpus)):
        return False
    if _manifest_sha(Path(corpus)) == manifest_sha:
        return True
    return file_list is not None and train_list_sha(Path(corpus)) == file_list


def refit_waves(record: dict, corpora: Iterable[Path], sample_rate: int, check_only: bool = False,
                trained_files: str | None = None) -> list[np.ndarray]:
    """The clips ``record`` (a config's ``embedding_norm``) was fitted on, from whichever of ``corpora`` has the
    recorded manifest or training file list (``trained_files``, the model's own ``data.file_list_sha256``,
    stands in for records that predate it: a standardiser is only ever fitted on the corpus the model trained
    on); raises :class:`AudioembError` naming the corpus needed when none has. ``check_only``: find the
    corpus, decode nothing."""
    if "manifest_sha256" not in record:  # fitted on a plain folder of audio
        for c in corpora:
            if _plain_folder_sha(c) == record["file_list_sha256"]:
                return [] if check_only else fit_waves(Path(c), int(record["clips"]), sample_rate)
        raise AudioembError(f"its embedding standardiser was fitted on the folder `{record.get('folder')}` (file list "
                            f"{record['file_list_sha256'][:12]}…), which was not given as it was: pass that folder "
                            "(--corpus) so that the random-init baseline is standardised the same way")
    files = record.get("file_list_sha256") or trained_files
    for c in corpora:
        if same_corpus(c, record["manifest_sha256"], files):
            return [] if check_only else fit_waves(Path(c), int(record["clips"]), sample_rate)
    raise AudioembError(f"its embedding standardiser was fitted on the corpus `{record.get('corpus')}` (manifest "
                        f"{record['manifest_sha256'][:12]}…), which was not given: pass that corpus (--corpus) so "
                        "that the random-init baseline is standardised the same way")


def package_standardized(src: str | Path, out: Path, corpus: Path, clips: int = FIT_CLIPS, evaluate: bool = True,
                         name: str | None = None, log=print, seeds: int | None = None) -> dict:
    """Re-export the model folder (or shipped name) ``src`` to ``out`` with an embedding standardiser fitted
    on ``clips`` training clips of ``corpus``, the corpus it trained on; checked (collapse, ONNX parity) and
    scored as :func:`~audioemb.train.package.package_run` does, beside random init standardised the same way.
    ``corpus`` may be a plain folder of audio instead: fitted on ``clips`` of its files, checked on those, and
    not scored (a folder has no tasks; ``audioemb eval LABELLED -m OUT --corpus FOLDER`` scores it)."""
    from ..registry import resolve

    folder = open_folder(resolve(src), verify=("model.safetensors",))
    cfg = folder.config
    if cfg.get("embedding_norm"):
        raise ExportError(f"{folder.path} already standardises its embedding")
    corpus = Path(corpus)
    if not corpus.is_dir():
        raise ExportError(f"{corpus}: not a folder (give the corpus the model trained on, or a folder of audio)")
    plain = not is_corpus(corpus)
    data = cfg.get("training", {}).get("data") or {}
    trained_on = data.get("manifest_sha256")
    if trained_on and not plain and not same_corpus(corpus, trained_on, data.get("file_list_sha256")):
        raise ExportError(f"{folder.path} was trained on another corpus (manifest {trained_on[:12]}…) than {corpus}; "
                          "fit the standardiser on the corpus it trained on")
    model = load_module(folder)
    record = norm_record(corpus, clips)
    waves = fit_waves(corpus, clips, model.sample_rate)
    if len(waves) < clips:
        raise ExportError(f"{corpus}: only {len(waves)} readable {'audio files' if plain else 'training clips'}, "
                          f"{clips} asked for")
    model.embed_norm = fit_standardizer(model, waves)
    log(f"fitted the embedding standardiser on {len(waves)} {'files' if plain else 'training clips'} of {corpus}")
    check = waves if plain else check_waves(corpus, [], None, model.sample_rate)
    training = dict(cfg.get("training", {}))
    training["final_collapse_std_heldout"] = round(_check_collapse(model, check), 4)
    sha = cfg["files"]["model.safetensors"]
    note = (f"embedding standardised per dimension (`audioemb export --from {cfg['name']} --standardize {clips} "
            f"--corpus {corpus.name}`), {record['fitted_on']}; the encoder weights are unchanged (model.safetensors "
            f"sha256 `{sha[:16]}…` before), and the figures below are the standardised embedding's, beside random "
            "init standardised the same way")
    return write_reexport(model, out, cfg, training, note, name, None if plain else corpus, check,
                          evaluate and not plain, log, seeds, {"embedding_norm": record})
