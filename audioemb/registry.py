"""Model names and where their folders are.

Names read ``<objective>-<size>.<data-tag>`` (``byol-s.debian2``). A model is given as one of:

- a shipped name, from :func:`list_models`;
- ``local-dir:PATH`` or a path to an existing model folder;
- ``hf-hub:ORG/REPO[@REVISION]``, downloaded once with huggingface-hub (the only source that touches
  the network, and only when asked for by name).

A string that looks like a path but is not a folder is refused: it never falls back to a shipped model.
"""

from __future__ import annotations

import fnmatch
import os
from importlib import resources
from pathlib import Path

from .modelfolder import ModelConfig, ModelFolderError, read_model_config

DEFAULT_MODEL = "npc-s.debian"

#: Names that were shipped once and replaced by a retrain: {old name: (its replacement, the date it went)}. The
#: replacement embeds differently, so embeddings and indexes written with the old model need re-embedding; its
#: card's ``training.tried`` gives the old model's figures and weights' sha256.
RETIRED: dict[str, tuple[str, str]] = {
    "apc_bidir-s.debian": ("apc_bidir-s.debian2", "2026-11-26"),
    "apc_bwd-s.debian": ("apc_bwd-s.debian2", "2026-11-26"),
    "apc_fwd-s.debian": ("apc_fwd-s.debian2", "2026-11-26"),
    "mpc-s.debian": ("mpc-s.debian2", "2026-11-26"),
    "local_aggregation-s.debian": ("local_aggregation-s.debian2", "2026-11-26"),
    "moco_v2-s.debian": ("moco_v2-s.debian2", "2026-11-26"),
    "moco_v3-s.debian": ("moco_v3-s.debian2", "2026-11-26"),
    "cpc-s.debian": ("cpc-s.debian2", "2026-11-29"),
    "wav2vec2-s.debian": ("wav2vec2-s.debian2", "2026-11-29"),
    "barlow_twins-s.debian": ("barlow_twins-s.debian2", "2026-11-29"),
    "deepcluster-s.debian": ("deepcluster-s.debian2", "2026-11-29"),
    "simsiam-s.debian": ("simsiam-s.debian2", "2026-11-29"),
    "byol-s.debian": ("byol-s.debian2", "2026-11-29"),
    "swav-s.debian": ("swav-s.debian2", "2026-11-29"),
}


def pretrained_dir() -> Path:
    """The folder of shipped models (``audioemb.pretrained`` in site-packages, ``pretrained/`` in a checkout)."""
    return Path(str(resources.files("audioemb.pretrained")))


def list_models(pattern: str = "*") -> list[str]:
    """Names of the shipped models matching a glob ``pattern`` (``list_models("byol*")``), sorted."""
    root = pretrained_dir()
    names = [p.name for p in root.iterdir() if (p / "config.json").is_file()]
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def model_configs(pattern: str = "*") -> dict[str, ModelConfig]:
    """{name: typed config} of the shipped models matching ``pattern``."""
    return {n: read_model_config(pretrained_dir() / n) for n in list_models(pattern)}


def command_ref(name: str) -> str:
    """How a card's commands name a model: a shipped model by its name, any other by its folder (a name that is
    not shipped does not load; after `audioemb push`, its ``hf-hub:ORG/NAME`` does)."""
    return name if name in list_models() else f"path/to/{name}"


def model_ref(model) -> str:
    """How to load an :class:`~audioemb.runtime.EmbeddingModel` again: its name for a shipped model, else its
    folder's absolute path (a user's model may share a shipped or retired model's name)."""
    p = Path(model.folder.path).resolve()
    return model.name if p.parent == pretrained_dir().resolve() else str(p)


def resolve(name_or_folder: str | os.PathLike | None = None) -> Path:
    """The folder of a model given by name, ``local-dir:``/``hf-hub:`` prefix, or folder path."""
    if name_or_folder is None:
        name_or_folder = DEFAULT_MODEL
    s = os.fspath(name_or_folder)
    if s.startswith("local-dir:"):
        return _existing_folder(s[len("local-dir:"):])
    if s.startswith("hf-hub:"):
        return _from_hub(s[len("hf-hub:"):])
    if s in list_models():
        return pretrained_dir() / s
    if isinstance(name_or_folder, os.PathLike) or os.sep in s or s.startswith(".") or os.path.exists(s):
        return _existing_folder(s)
    if s in RETIRED:
        new, date = RETIRED[s]
        raise ModelFolderError(f"model {s!r} was retired on {date}, replaced by {new!r} (a retrain, which embeds "
                               f"differently): use --model {new} and re-embed; indexes and embeddings written with "
                               f"{s!r} need rebuilding with it")
    known = ", ".join(list_models()) or "none"
    raise ModelFolderError(f"unknown model {s!r}; shipped models: {known}. "
                           "Give a folder path, local-dir:PATH or hf-hub:ORG/REPO for others.")


def _existing_folder(s: str) -> Path:
    p = Path(s).expanduser()
    if not p.is_dir():
        raise ModelFolderError(f"{s}: no such model folder")
    if not (p / "config.json").is_file():
        raise ModelFolderError(f"{s}: no config.json; not an audioemb model folder")
    return p


def _from_hub(repo: str) -> Path:
    from huggingface_hub import snapshot_download

    repo_id, _, revision = repo.partition("@")
    path = snapshot_download(repo_id, revision=revision or None,
                             allow_patterns=["config.json", "model.onnx", "model.safetensors", "README.md"])
    return Path(path)
