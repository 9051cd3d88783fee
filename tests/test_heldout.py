"""Held-out figures along a run: each kept checkpoint is scored once, with its own weights."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from audioemb.eval.run import corpus_tasks, score  # noqa: E402
from audioemb.nn.model import AudioEmbedder  # noqa: E402
from audioemb.train import heldout  # noqa: E402
from audioemb.train.trainer import Trainer  # noqa: E402

from .test_trainer import corpus, tiny_cfg  # noqa: E402,F401  (the tiny corpus fixture)


def test_kept_checkpoints_are_scored_once_with_their_own_weights(corpus, tmp_path, monkeypatch):  # noqa: F811
    cfg = tiny_cfg(4)
    cfg.keep_every = 2
    run = tmp_path / "run"
    tr = Trainer(cfg, corpus, run, log=lambda *_: None)
    tr.fit()
    (run / "command.json").write_text(json.dumps({"argv": "test"}))
    assert [s for s, _ in heldout.kept_checkpoints(run)] == [2, 4]

    curve = heldout.score_kept(run, corpus, log=lambda *_: None)
    assert [r["step"] for r in curve] == [2, 4]
    # step 4 is the end of the run: its figures are those of the trainer's final weights
    final = AudioEmbedder(tr.objective.frontend, tr.objective.encoder)
    (ds,) = corpus_tasks(corpus)
    assert curve[1]["results"]["toy"] == score(heldout.embed_clips(final, ds.paths), ds)
    assert curve[0]["results"] != curve[1]["results"]
    assert set(curve[1]["means"]) == set()  # "toy" is in no domain: no domain mean

    def boom(*_a, **_k):
        raise AssertionError("a scored step was scored again")

    monkeypatch.setattr(heldout, "score_weights", boom)
    assert heldout.score_kept(run, corpus, log=lambda *_: None) == curve


def test_domain_means():
    res = {"speech-a": {"probe_acc": 0.5, "knn_p10": 0.2, "fewshot_acc": 0.1},
           "speech-b": {"probe_acc": 0.7, "knn_p10": 0.4, "fewshot_acc": 0.3},
           "music-x": {"probe_acc": 0.9, "knn_p10": 0.8, "fewshot_acc": 0.7}}
    m = heldout.domain_means(res)
    assert m["speech/probe_acc"] == 0.6 and m["music/knn_p10"] == 0.8 and "sound/probe_acc" not in m
