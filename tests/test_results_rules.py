"""The default-model rule and the "does it learn" table of docs/results.md, on hand-made figures."""

from __future__ import annotations

import pytest

from audioemb.eval import rules
from audioemb.eval.results import learning_table, rule_section
from audioemb.model_config import ModelConfig

TASKS = ("speech-a", "speech-b", "music-a")


def _res(v: float, sd: float | None = None) -> dict:
    row = {t: {"probe_acc": v, "knn_p10": v - 0.2, "fewshot_acc": v - 0.1} for t in TASKS}
    if sd is not None:
        for r in row.values():
            r["seed_std"] = {k: sd for k in rules.RULE_METRICS}
            r["seed_values"] = {k: [r[k] - sd, r[k] + sd] for k in rules.RULE_METRICS}
    return row


def _cfg(name: str, own: float, rand: float, logmel: float) -> ModelConfig:
    return ModelConfig.from_dict({
        "name": name, "sample_rate": 16000, "embedding_dim": 8, "frontend": {}, "encoder": {"type": "audiontt"},
        "files": {}, "metrics": {"results": {name: _res(own), f"{name}@random-init": _res(rand, 0.01),
                                             "logmel-stats": _res(logmel)}}})


def test_rule_picks_the_best_model_that_beats_both_baselines(monkeypatch):
    configs = {"good": _cfg("good", 0.8, 0.7, 0.75), "better-but-random": _cfg("better-but-random", 0.85, 0.9, 0.7),
               "ok": _cfg("ok", 0.77, 0.7, 0.75)}
    stored = {n: c.metrics.results for n, c in configs.items()}
    best, misses = rules.pick_default(stored)
    assert best == "good" and misses["ok"] == [] and misses["good"] == []
    assert misses["better-but-random"][0].startswith("speech probe 0.850 ≤ better-but-random@random-init 0.900")
    monkeypatch.setattr("audioemb.eval.results.DEFAULT_MODEL", "ok")
    text = "\n".join(rule_section(configs))
    assert "| good | yes |" in text and "| better-but-random | no |" in text
    assert "**The rule picks `good`, but the default is `ok`**" in text


def test_missing_few_shot_figures_never_pass_the_rule():
    stored = _cfg("m", 0.9, 0.5, 0.5).metrics.results
    for r in stored["m"].values():
        del r["fewshot_acc"]
    assert "no speech few-shot figures" in rules.rule_misses("m", stored)


def test_learning_table_shows_the_gap_and_the_seed_spread():
    lines = learning_table({"learns": _cfg("learns", 0.8, 0.7, 0.6), "random": _cfg("random", 0.7, 0.72, 0.6)})
    assert lines[2].startswith("| learns | 0.800 · 0.700 ± 0.010 · +0.100 |") and lines[2].endswith("| yes |")
    assert lines[3].endswith("| **no** |")
    assert rules.seed_std_of_mean(_res(0.5, 0.02), "probe_acc") == pytest.approx(0.02)


def test_a_flagship_needs_its_bars_on_every_domain_and_music_pitch():
    tasks = ("speech-a", "music-pitch", "music-b", "sound-a")

    def res(v: float, pitch: float | None = None) -> dict:
        row = {t: {"probe_acc": v, "knn_p10": v - 0.2, "fewshot_acc": v - 0.1} for t in tasks}
        if pitch is not None:
            row["music-pitch"]["probe_acc"] = pitch
        return row

    stored = {"f-m.x": res(0.80), "f-m.x@random-init": res(0.70), "logmel-stats": res(0.78, 0.79)}
    assert rules.is_flagship("f-m.x") and not rules.is_flagship("npc-s.debian")
    misses = rules.flagship_misses("f-m.x", stored)
    # +0.02 over log-mel on speech and sound, +0.015 on music: each fails the +0.03 bars
    assert "speech probe 0.800 − logmel-stats 0.780 = +0.0200 < +0.03" in misses
    assert not any("random-init" in m for m in misses) and not any("pitch probe" in m for m in misses)
    stored["logmel-stats"] = res(0.70, 0.81)
    assert rules.flagship_misses("f-m.x", stored) == ["music-pitch probe 0.800 < logmel-stats 0.810"]
    best, all_misses = rules.pick_default({"f-m.x": stored})  # clears the general rule but not its own bars
    assert best is None and all_misses["f-m.x"] == ["music-pitch probe 0.800 < logmel-stats 0.810"]


def test_a_card_lists_what_was_tried_for_a_model_that_does_not_learn():
    from audioemb.eval.tables import verdict

    tried = ["the v1 recipe: -0.011 / -0.005", "4x longer on corpus v2: no better"]
    stuck = _cfg("stuck", 0.7, 0.72, 0.6).metrics.results
    text = verdict("stuck", stuck, tried)
    assert "**It does not beat its random init**" in text
    assert "What was tried to make it learn" in text and "\n- the v1 recipe: -0.011 / -0.005\n- 4x" in text
    learns = _cfg("learns", 0.8, 0.7, 0.6).metrics.results
    assert "What was tried" not in verdict("learns", learns, tried)  # only a model that does not learn


def test_a_flagship_card_lists_what_was_tried_for_the_bars_it_misses():
    from audioemb.eval.tables import verdict

    tried = ["continued at a quarter of the rate: the same three bars missed"]
    res = {"f-m.x": _res(0.80), "f-m.x@random-init": _res(0.70, 0.01), "logmel-stats": _res(0.78)}
    text = verdict("f-m.x", res, tried)  # it learns, but is only +0.02 over log-mel: bars missed
    assert "**It misses**" in text
    assert "What was tried to clear them" in text and "\n- continued at a quarter of the rate" in text
    assert "What was tried" not in verdict("f-m.x", res, ())
