"""Training recipes: JSON files in ``audioemb/train/recipes/``, one per shipped model."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from importlib import resources
from pathlib import Path

from . import list_recipes
from .config import ConfigError
from .data import corpus_data_tag
from .trainer import TrainConfig


def load_recipe(name_or_path: str, overrides: list[str] | None = None) -> TrainConfig:
    """A recipe by name (``byol-s``) or JSON path, with ``key=value`` overrides (values parsed as JSON)."""
    p = Path(name_or_path)
    if p.suffix == ".json" and p.exists():
        d = json.loads(p.read_text())
    elif name_or_path in list_recipes():
        d = json.loads(resources.files(__package__).joinpath("recipes", f"{name_or_path}.json").read_text())
    else:
        raise ValueError(f"no recipe {name_or_path!r}; known: {list_recipes()}")
    for ov in overrides or []:
        key, _, raw = ov.partition("=")
        if not _:
            raise ValueError(f"override {ov!r} is not key=value")
        try:
            val = json.loads(raw)
        except json.JSONDecodeError:
            val = raw
        tgt = d
        *path, last = key.split(".")
        for i, k in enumerate(path):
            tgt = tgt.setdefault(k, {})
            if not isinstance(tgt, dict):
                raise ConfigError(f"--set {key}: {'.'.join(path[:i + 1])} is a setting, not a group of settings")
        tgt[last] = val
    return TrainConfig.from_dict(d)


def name_for_data(cfg: TrainConfig, corpus: Path | None, data: list[Path] | None) -> TrainConfig:
    """``cfg`` renamed ``<objective>-<size>.<data-tag>`` for what it trains on: the first ``--data`` folder's
    name, or the corpus's data tag (``debian2`` for corpus v2; ``debian`` for v1, whose recipe.json predates
    the tag). Call it only when the user set no ``name``."""
    if data:
        tag = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(data[0]).expanduser().resolve().name).strip("-") or "data"
    elif corpus is not None and (Path(corpus) / "recipe.json").is_file():
        tag = corpus_data_tag(json.loads((Path(corpus) / "recipe.json").read_text()))
    else:
        return cfg
    return replace(cfg, name=f"{cfg.name.split('.')[0]}.{tag}")
