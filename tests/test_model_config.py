"""The typed model config (read and checked once) and what renders from it: cards, `audioemb models`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from audioemb.card import render_card
from audioemb.model_config import ModelConfig, ModelFolderError
from audioemb.modelfolder import read_model_config
from audioemb.registry import DEFAULT_MODEL, list_models, pretrained_dir


def _raw(name: str = DEFAULT_MODEL) -> dict:
    return json.loads((pretrained_dir() / name / "config.json").read_text())


def test_every_shipped_config_reads_into_attributes():
    for name in list_models():
        cfg = read_model_config(pretrained_dir() / name)
        assert cfg.name == name and cfg.sample_rate == cfg.frontend.sample_rate > 0
        assert cfg.inference.window_s > 0 and cfg.embedding_dim > 0 and cfg.objective_name
        assert cfg.training.data.licences  # v1 configs: migrated from the packages they list
        assert name in cfg.metrics.results


@pytest.mark.parametrize("edit, needle", [
    (lambda c: c.pop("embedding_dim"), "missing required key 'embedding_dim'"),
    (lambda c: c.update(sample_rate="16000"), "sample_rate = '16000' is not int"),
    (lambda c: c.update(inference={"window_s": 1.0, "min_s": 2.0}), "min_s <= window_s"),
    (lambda c: c["frontend"].update(sample_rate=8000), "frontend.sample_rate 8000 != sample_rate 16000"),
])
def test_bad_configs_are_refused_naming_the_field(edit, needle):
    raw = _raw()
    edit(raw)
    with pytest.raises(ModelFolderError, match=r"x/config\.json") as e:
        ModelConfig.from_dict(raw, "x/config.json")
    assert needle in str(e.value)


def test_card_renders_from_the_config_alone():
    raw = _raw()
    raw["sample_rate"] = raw["frontend"]["sample_rate"] = 22050
    raw["training"]["data"] = {"kind": "folders", "folders": ["birds"], "files": 3, "clips": 3, "hours": 0.1}
    card = render_card(ModelConfig.from_dict(raw))
    assert "22.05 kHz" in card and "16 kHz" not in card and "Debian" not in card and "`birds`" in card


@pytest.mark.parametrize("columns", ["80", "60"])
def test_models_never_cuts_a_name_when_piped(columns):
    r = subprocess.run([sys.executable, "-m", "audioemb", "models"], capture_output=True, text=True, timeout=120,
                       env={"COLUMNS": columns, "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for name in list_models():
        assert any(f" {name} " in line for line in lines), (name, r.stdout)
    assert "…" not in r.stdout and max(map(len, lines[:-1])) <= int(columns)
    assert "columns left out" in lines[-1]
