"""Held-out figures along a run: each kept checkpoint is scored once, with its own weights."""

from __future__ import annotations

import json

import numpy as np
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


def test_export_copies_the_heldout_curve_into_config_and_card(corpus, tmp_path):  # noqa: F811
    from audioemb.card import render_card
    from audioemb.train.package import package_run

    cfg = tiny_cfg(2)
    cfg.keep_every = 1
    run = tmp_path / "run"
    Trainer(cfg, corpus, run, log=lambda *_: None).fit()
    (run / "command.json").write_text(json.dumps({"argv": "test"}))
    rows = [{"step": s, "means": {"speech/probe_acc": 0.5 + s / 10, "speech/knn_p10": 0.25, "music/probe_acc": 0.75},
             "results": {}} for s in (1, 2)]
    (run / heldout.CURVE_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = package_run(run, tmp_path / "model", corpus, evaluate=False, log=lambda *_: None)
    assert [r["step"] for r in out["training"]["heldout_curve"]] == [1, 2]
    card = (tmp_path / "model" / "README.md").read_text()
    assert "| step | speech | music |" in card and "| 2 | 0.700 / 0.250 / - | 0.750 / - / - |" in card
    del out["training"]["heldout_curve"]  # a model without a curve renders as before: no section
    assert "Held-out figures of the weights" not in render_card(out)


def test_batched_embedding_equals_one_clip_at_a_time(tmp_path, clips16k):
    """Equal-length clips run as one batch; the embeddings are those of one clip at a time."""
    import soundfile as sf

    from audioemb.nn.encoders import build_encoder
    from audioemb.nn.frontend import LogMel, LogMelConfig
    torch.manual_seed(0)
    model = AudioEmbedder(LogMel(LogMelConfig()), build_encoder({"type": "audiontt", "channels": 8, "hidden": 32}))
    paths = []
    for i, w in enumerate([*clips16k, clips16k[0][:8000], clips16k[1][:8000], clips16k[0][:100]]):
        paths.append(tmp_path / f"c{i}.wav")
        sf.write(paths[-1], w, 16000, subtype="FLOAT")
    waves: dict = {}
    batched = heldout.embed_clips(model, paths, waves, batch=2)
    single = np.stack([heldout.embed_clips(model, [p], batch=1)[0] for p in paths])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert set(waves) == set(paths)
