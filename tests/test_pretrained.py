"""Shipped models: golden outputs, ONNX against torch, self-consistent folders, cards with figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from audioemb.modelfolder import open_folder
from audioemb.registry import DEFAULT_MODEL, list_models, pretrained_dir

sys.path.insert(0, str(Path(__file__).parent / "golden"))
from update import compute

MODELS = list_models()
GOLDEN = Path(__file__).parent / "golden"


def test_default_model_is_shipped():
    assert DEFAULT_MODEL in MODELS


def test_shipped_models_fit_the_size_budget():
    total = sum(p.stat().st_size for p in pretrained_dir().rglob("*") if p.is_file())
    assert total < 80e6, f"pretrained/ holds {total / 1e6:.1f} MB"


@pytest.mark.parametrize("name", MODELS)
def test_folder_is_complete_and_verified(name):
    folder = open_folder(pretrained_dir() / name)  # checks the sha256 of both weight files
    cfg = folder.config
    assert cfg["name"] == name
    for key in ("frontend", "encoder", "objective", "training", "metrics", "onnx", "sample_rate", "embedding_dim"):
        assert cfg.get(key), f"{name}: config.json has no {key}"
    onnx = cfg["onnx"]  # newer exports record the scale-relative check (frames are not normalised)
    assert onnx.get("max_rel_diff_vs_torch", onnx["max_abs_diff_vs_torch"]) <= 1e-4
    assert onnx.get("embedding_max_abs_diff_vs_torch", onnx["max_abs_diff_vs_torch"]) <= 1e-4
    assert cfg["training"].get("command", "").startswith("audioemb ")
    assert cfg["metrics"]["results"][name]  # held-out figures were measured
    card = (pretrained_dir() / name / "README.md").read_text()
    assert cfg["training"]["command"] in card and "Held-out evaluation" in card


@pytest.mark.parametrize("name", MODELS)
def test_golden_outputs(name):
    golden = GOLDEN / f"{name}.npz"
    assert golden.exists(), f"no golden file for {name}: run python tests/golden/update.py {name}"
    want = np.load(golden)
    got = compute(name)
    for key in want.files:
        np.testing.assert_allclose(got[key], want[key], atol=1e-4, rtol=1e-4, err_msg=f"{name}: {key}")


@pytest.mark.parametrize("name", MODELS)
def test_onnx_matches_torch_on_real_clips(name):
    """The export's parity rule: L2-normalised clip embeddings within 1e-4, raw outputs within 1e-4 of their scale."""
    pytest.importorskip("torch")
    onnx, torch_out = compute(name, "onnx"), compute(name, "torch")
    unit = [x["clip"] / np.linalg.norm(x["clip"], axis=1, keepdims=True) for x in (onnx, torch_out)]
    assert np.abs(unit[0] - unit[1]).max() <= 1e-4
    for key in onnx:
        scale = max(1.0, float(np.abs(torch_out[key]).max()))
        assert np.abs(onnx[key] - torch_out[key]).max() <= 1e-4 * scale, key


def test_results_rows_are_shipped_models_and_baselines_only():
    """A retired model's figures, stored beside older models' own as a reference column, get no results row."""
    from audioemb.eval.results import collect
    from audioemb.registry import RETIRED

    _, rows, _ = collect()
    assert "byol-s.debian2" in rows and not set(rows) & set(RETIRED)


def test_cards_have_their_results_row():
    results = Path(__file__).resolve().parents[1] / "docs" / "results.md"
    text = results.read_text()
    for name in MODELS:
        assert f"[{name}](" in text
        assert json.loads((pretrained_dir() / name / "config.json").read_text())["metrics"]


@pytest.mark.parametrize("name", MODELS)
def test_shipped_card_is_what_its_config_renders(name):
    """A card says what its config records: one edited by hand, or left behind by a config change, fails."""
    from audioemb.card import render_card

    folder = pretrained_dir() / name
    card = render_card(json.loads((folder / "config.json").read_text()))
    assert (folder / "README.md").read_text() == card, f"regenerate it: audioemb.card.write_card({str(folder)!r})"


def test_models_command_lists_every_model_with_its_figures():
    from audioemb.cli import app
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["models", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.output)}
    assert set(rows) == set(MODELS)
    assert [n for n, row in rows.items() if row["default"]] == [DEFAULT_MODEL]
    for name, row in rows.items():
        cfg = open_folder(pretrained_dir() / name).config
        assert row["dim"] == cfg["embedding_dim"]
        assert row["probe_acc"] == {t: m["probe_acc"] for t, m in cfg["metrics"]["results"][name].items()}
        assert row["stored_parameters"] == cfg.get("stored_parameters", cfg["parameters"]) >= row["parameters"]


def test_models_table_marks_readouts_that_leave_weights_unrun():
    from audioemb.cli import app
    from typer.testing import CliRunner

    unrun = {n for n in MODELS if "stored_parameters" in open_folder(pretrained_dir() / n).config}
    assert unrun, "no shipped model leaves weights unrun: this test has nothing to check"
    out = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"}).output
    note = out[out.index("\n†"):].replace("\n", " ")
    for n in MODELS:
        row = next(line for line in out.splitlines() if f" {n} " in line)
        assert ("M†" in row) == (n in unrun) == (n in note), row
