"""Every shipped training recipe parses and builds its objective."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from audioemb.nn.encoders import build_encoder  # noqa: E402
from audioemb.nn.frontend import LogMel, LogMelConfig  # noqa: E402
from audioemb.nn.views import Views  # noqa: E402
from audioemb.objectives import get_objective  # noqa: E402
from audioemb.train.recipes import list_recipes, load_recipe  # noqa: E402


@pytest.mark.parametrize("name", list_recipes())
def test_recipe_builds(name):
    cfg = load_recipe(name)
    assert cfg.name.startswith(f"{name}.")  # model names read <objective>-<size>.<data-tag>
    fe = LogMel(LogMelConfig(**{k: v for k, v in cfg.frontend.items() if k != "type"}))
    obj = get_objective(cfg.objective)(build_encoder(cfg.encoder), fe, Views(cfg.views, std=fe.std),
                                       **cfg.objective_params)
    assert sum(p.numel() for p in obj.encoder.parameters()) < 3_000_000


def test_overrides():
    cfg = load_recipe("byol-s", ["steps=10", "objective_params.hidden=64", "views.mixup=0"])
    assert cfg.steps == 10 and cfg.objective_params["hidden"] == 64 and cfg.views["mixup"] == 0
    with pytest.raises(ValueError):
        load_recipe("byol-s", ["nonsense_setting=1"])
