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


def test_a_card_lists_what_was_tried_and_the_versions_before():
    from audioemb.eval.tables import verdict

    tried = ["the v1 recipe: -0.011 / -0.005", "4x longer on corpus v2: no better"]
    stuck = _cfg("stuck", 0.7, 0.72, 0.6).metrics.results
    text = verdict("stuck", stuck, tried)
    assert "**It does not beat its random init**" in text
    assert "What was tried to make it learn" in text and "\n- the v1 recipe: -0.011 / -0.005\n- 4x" in text
    learns = _cfg("learns", 0.8, 0.7, 0.6).metrics.results
    text = verdict("learns", learns, tried)
    assert "What was tried" not in text  # a model that learns lists them as its history instead
    assert "Earlier versions, and what else was tried" in text and "\n- the v1 recipe: -0.011 / -0.005\n- 4x" in text
    assert "Earlier versions" not in verdict("learns", learns, ())


def test_a_flagship_card_lists_what_was_tried_for_the_bars_it_misses():
    from audioemb.eval.tables import verdict

    tried = ["continued at a quarter of the rate: the same three bars missed"]
    res = {"f-m.x": _res(0.80), "f-m.x@random-init": _res(0.70, 0.01), "logmel-stats": _res(0.78)}
    text = verdict("f-m.x", res, tried)  # it learns, but is only +0.02 over log-mel: bars missed
    assert "**It misses**" in text
    assert "What was tried to clear them" in text and "\n- continued at a quarter of the rate" in text
    assert "What was tried" not in verdict("f-m.x", res, ())


def _with_other(cfg: ModelConfig, own: float, rand: float) -> ModelConfig:
    raw = {**cfg.raw, "metrics": {**cfg.raw["metrics"], "other_tasks": {
        "corpus": "`corpus2` (debian2)", "tasks": {"sound-new": {"clips": 9, "classes": 3, "groups": 5}},
        "results": {cfg.name: {"sound-new": {"probe_acc": own, "knn_p10": own - 0.3, "fewshot_acc": own - 0.2}},
                    f"{cfg.name}@random-init": {"sound-new": {"probe_acc": rand, "knn_p10": rand - 0.3,
                                                              "fewshot_acc": rand - 0.2}},
                    "logmel-stats": {"sound-new": {"probe_acc": 0.5, "knn_p10": 0.2, "fewshot_acc": 0.3}}}}}}
    return ModelConfig.from_dict(raw)


def test_other_tasks_get_their_own_section_and_never_enter_the_means_or_the_rule():
    from audioemb.eval.results import other_tasks_section

    plain = {"a": _cfg("a", 0.80, 0.70, 0.60)}
    assert other_tasks_section(plain) == []  # nothing scored: no section
    other = {"a": _with_other(plain["a"], 0.9, 0.6)}
    assert other["a"].metrics.other_tasks["tasks"] == {"sound-new": {"clips": 9, "classes": 3, "groups": 5}}
    text = "\n".join(other_tasks_section(other))
    assert "## Tasks outside the suite" in text and "`corpus2` (debian2)" in text
    assert "| [a](../pretrained/a/README.md) | 0.900 / 0.600 / 0.700 |" in text
    assert "| &nbsp;&nbsp;Δ random init | +0.300 / +0.300 / +0.300 |" in text
    assert "| logmel-stats | 0.500 / 0.200 / 0.300 |" in text
    # the suite's tables and the rule read the suite only, whatever the other tasks say
    assert learning_table(other) == learning_table(plain)
    assert rule_section(other) == rule_section(plain)


def test_rerun_other_scores_only_the_tasks_outside_each_models_suite(tmp_path, monkeypatch):
    import json

    from audioemb.eval import baselines, results, run
    from audioemb.eval.data import LabelledSet
    from audioemb.modelfolder import write_config

    folder = tmp_path / "pretrained" / "a"
    folder.mkdir(parents=True)
    cfg = _cfg("a", 0.8, 0.7, 0.6).raw
    cfg["metrics"]["heldout_tasks"] = {"speech-a": {}}
    write_config(folder, cfg)
    cfg = json.loads((folder / "config.json").read_text())
    corpus = tmp_path / "corpus2"
    (corpus / "tasks").mkdir(parents=True)
    (corpus / "recipe.json").write_text(json.dumps({"data_tag": "debian2"}))
    monkeypatch.setattr(results, "pretrained_dir", lambda: tmp_path / "pretrained")
    monkeypatch.setattr(results, "model_configs", lambda pattern: {"a": ModelConfig.from_dict(cfg)})
    names = ("speech-a", "sound-new")
    monkeypatch.setattr(run, "corpus_tasks", lambda c: [LabelledSet(n, [], [], None) for n in names])
    monkeypatch.setattr(baselines, "trained_model", lambda name: "model")
    seen = {}
    monkeypatch.setattr(baselines, "random_init_models",
                        lambda name, onnx_dir, corpora: seen.setdefault("corpora", corpora) and ["random"])
    monkeypatch.setattr(baselines, "LogMelStats", lambda frontend: "logmel")

    def evaluate(models, tasks, log, cache):
        seen["models"], seen["tasks"] = models, [t.name for t in tasks]
        return {"tasks": {"sound-new": {"clips": 0}}, "results": {"a": {"sound-new": {"probe_acc": 0.9}}}}

    monkeypatch.setattr(run, "evaluate", evaluate)
    results.rerun_other(corpus, log=lambda *_: None, cache=tmp_path / "cache", fit_corpora=(tmp_path / "corpus",))
    # a standardised model's random init may refit on the suite's corpus, where its statistics came from
    assert seen == {"models": ["model", "random", "logmel"], "tasks": ["sound-new"],
                    "corpora": (corpus, tmp_path / "corpus")}
    stored = json.loads((folder / "config.json").read_text())["metrics"]
    assert stored["other_tasks"] == {"corpus": "`corpus2` (debian2)", "tasks": {"sound-new": {"clips": 0}},
                                     "results": {"a": {"sound-new": {"probe_acc": 0.9}}}}
    assert stored["results"] == cfg["metrics"]["results"]  # the suite's figures are untouched


def test_a_card_shows_the_other_tasks_apart_from_the_suite():
    from audioemb.eval.tables import evaluation_section

    cfg = _with_other(_cfg("a", 0.80, 0.70, 0.60), 0.9, 0.6)
    cfg = ModelConfig.from_dict({**cfg.raw, "metrics": {**cfg.raw["metrics"], "heldout_tasks": {
        t: {"clips": 4, "classes": 2} for t in TASKS}}})
    text = evaluation_section(cfg)
    head, _, other = text.partition("### Tasks outside the suite: `corpus2` (debian2)")
    assert other and "sound-new" not in head  # the suite's tables and means never show it
    assert "- `sound-new`: 9 clips, 3 classes, 5 groups" in other
    assert "| sound-new | 9 / 3 | **0.900** |" in other  # the model's probe, best of its row


def test_a_retired_reference_column_is_marked():
    from audioemb.eval.tables import metric_table

    res = {"m.x": _res(0.8), "simsiam-s.debian": _res(0.7)}
    tasks = {t: {"clips": 10, "classes": 2} for t in res["m.x"]}
    assert metric_table(tasks, res, "probe_acc").splitlines()[0].endswith("| m.x | simsiam-s.debian (retired) |")


def test_each_distinct_random_init_encoder_has_its_own_row():
    """Regression: the per-task tables showed one "random-init audiontt" row, the first model's (audio2vec's,
    speech-speaker 0.492), beside models whose own random init differs (the flagship's 0.697): a +0.23 gain
    where the real one is +0.02. Now one row per distinct random-init encoder, named by the models it serves."""
    from audioemb.eval.results import collect

    _, rows, configs = collect()
    rand = {k: v for k, v in rows.items() if k.startswith("random-init audiontt")}
    flagship = configs["byol_frames-m.debian2"].metrics.results["byol_frames-m.debian2@random-init"]
    assert rand["random-init audiontt [byol_frames-m.debian2]"] == flagship
    assert len(rand) == len({str(v) for v in rand.values()}) > 1  # distinct figures, one row each
