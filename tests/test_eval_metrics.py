"""Evaluation metrics on hand-checkable inputs, and the eval CLI on a labelled folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from audioemb.eval.metrics import knn_precision, linear_probe, retrieval_map


def test_knn_precision_and_map_by_hand():
    # two tight pairs far apart: every item's nearest other item shares its label
    x = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    y = np.array(["a", "a", "b", "b"])
    assert knn_precision(x, y, k=1) == 1.0
    assert knn_precision(x, y, k=3) == pytest.approx(1 / 3)  # 1 of the 3 others shares the label
    assert retrieval_map(x, y) == 1.0
    # swap labels so each item's nearest neighbour is the wrong class: relevant item ranked 2nd of 3
    y2 = np.array(["a", "b", "a", "b"])
    assert knn_precision(x, y2, k=1) == 0.0
    # ranks of the one relevant item per query: a0 -> 2nd or 3rd; compute AP exactly
    sims = x @ x.T / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(x, axis=1))
    aps = []
    for i in range(4):
        order = [j for j in np.argsort(-sims[i]) if j != i]
        rank = next(r for r, j in enumerate(order, 1) if y2[j] == y2[i])
        aps.append(1 / rank)
    assert retrieval_map(x, y2) == pytest.approx(np.mean(aps))


def test_groups_exclude_same_group_neighbours():
    x = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    y = np.array(["a", "a", "b", "b"])
    groups = np.array([0, 0, 1, 1])  # each pair is one group: its same-label neighbour is excluded
    assert knn_precision(x, y, groups, k=1) == 0.0


def test_linear_probe_separable_and_grouped():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    x = np.eye(4)[y] * 3 + rng.standard_normal((120, 4)) * 0.3
    acc, std = linear_probe(x, y)
    assert acc > 0.97 and std < 0.05
    noise = rng.standard_normal((120, 8))
    assert linear_probe(noise, y)[0] < 0.5
    groups = np.tile(np.arange(10), 12)
    assert linear_probe(x, y, groups)[0] > 0.95


def test_eval_cli_on_class_folders(tmp_path, tiny_model, clip_paths):
    from audioemb.cli import app
    from typer.testing import CliRunner

    for i, p in enumerate(clip_paths):
        d = tmp_path / "data" / ("speech" if "speech" in p.name else "other")
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, d / p.name)
        shutil.copy(p, d / f"copy{i}{p.suffix}")
    out = tmp_path / "scores.json"
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "data"), "--model", str(tiny_model), "--no-baselines",
                                 "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "linear probe accuracy" in r.output and "tiny-ntt.test" in r.output
    res = json.loads(out.read_text())
    assert res["tasks"]["data"]["classes"] == 2
    scores = res["results"]["tiny-ntt.test"]["data"]
    assert all(0.0 <= scores[m] <= 1.0 for m in ("probe_acc", "knn_p10", "map"))
    assert scores["map"] > 0.5  # each clip's exact copy ranks first, above the chance level of two classes
