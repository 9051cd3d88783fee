"""Every objective on real clips: the loss goes down, online parameters get gradients, targets none."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from audioemb.nn.encoders import build_encoder  # noqa: E402
from audioemb.nn.frontend import LogMel  # noqa: E402
from audioemb.nn.views import Views  # noqa: E402
from audioemb.objectives import get_objective, list_objectives  # noqa: E402
from audioemb.objectives.base import Batch, TrainerView  # noqa: E402
from audioemb.train.data import random_crop  # noqa: E402

TINY_SEQ = get_objective("mpc").tiny_encoder


def trainer_view(obj, wav) -> TrainerView:
    """The trainer's side of the epoch hooks, on a fixed batch: the clip count and clip embeddings."""

    def embed_clips(indices):
        enc = obj.encoder
        with torch.no_grad():
            was = enc.training
            enc.eval()
            out = enc.pool(enc(obj.frontend(wav[torch.as_tensor(indices), 0])))
            enc.train(was)
        return out

    return TrainerView(len(wav), embed_clips)


def make(name, clips16k):
    torch.manual_seed(0)
    fe = LogMel()
    fe.fit_stats([torch.from_numpy(w) for w in clips16k])
    cls = get_objective(name)
    enc = build_encoder(cls.tiny_encoder)
    obj = cls(enc, fe, Views({"mixup": 0.2}, std=fe.std), **cls.tiny_params)
    rng = np.random.default_rng(0)
    wav = torch.from_numpy(np.stack([[random_crop(w, 8000, rng) for _ in range(obj.n_crops)] for w in clips16k]))
    obj.setup(len(wav))
    return obj, wav


@pytest.mark.parametrize("name", list_objectives())
def test_loss_goes_down_and_gradients_flow(name, clips16k):
    obj, wav = make(name, clips16k)
    trainer = trainer_view(obj, wav)
    clips = np.arange(len(wav))
    obj.on_epoch_start(0, trainer)
    obj.on_epoch_start(1, trainer)  # a second epoch: e.g. Local Aggregation's clustering-based neighbours
    if hasattr(obj, "enqueue"):  # a fixed batch would fill a queue with its own positives as negatives
        obj.enqueue = lambda keys: None
    opt = torch.optim.Adam([p for p in obj.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for step in range(15):
        torch.manual_seed(0)  # the same augmentations every step: the loss on a fixed batch
        out = obj.training_step(Batch(wav, step, clips))
        assert torch.isfinite(out["loss"]) and out["embeddings"].shape == (len(wav), obj.encoder.embedding_dim)
        opt.zero_grad()
        out["loss"].backward()
        if step == 0:
            for pname, p in obj.named_parameters():
                if p.requires_grad:
                    assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}: no gradient for {pname}"
                else:
                    assert p.grad is None, f"{name}: target parameter {pname} got a gradient"
            trainable = {n for n, p in obj.named_parameters() if p.requires_grad}
            assert any(n.startswith("encoder.") for n in trainable)
            for online, target in obj.momentum_pairs():
                assert all(not p.requires_grad for p in target.parameters())
                assert all(p.requires_grad for p in online.parameters())
        opt.step()
        obj.on_after_step(step, (step + 1) / 15)
        losses.append(float(out["loss"]))
    assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses


def test_momentum_update_moves_target_toward_online(clips16k):
    obj, _ = make("byol", clips16k)
    online, target = obj.momentum_pairs()[0]
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    before = [p.clone() for p in target.parameters()]
    obj.on_after_step(0, 0.0)  # m = base momentum 0.99
    for b, t, o in zip(before, target.parameters(), online.parameters()):
        assert torch.allclose(t, 0.99 * b + 0.01 * o, atol=1e-6)
    assert obj.momentum(1.0) == pytest.approx(1.0)


def test_moco_v2_queue_is_a_ring_buffer(clips16k):
    obj, _ = make("moco_v2", clips16k)
    keys = torch.nn.functional.normalize(torch.randn(40, 32), dim=1)
    obj.enqueue(keys)
    obj.enqueue(keys[:30])
    assert int(obj.queue_ptr) == (40 + 30) % 64
    assert torch.allclose(obj.queue[40:64], keys[:24]) and torch.allclose(obj.queue[:6], keys[24:30])
    assert obj.momentum(0.5) == 0.9  # constant (tiny_params set m = 0.9; the default is 0.999)


def test_backward_apc_predicts_the_past(clips16k):
    torch.manual_seed(0)
    fe = LogMel()
    enc = build_encoder({**get_objective("apc").tiny_encoder, "reverse": True}).eval()  # eval: no batch statistics
    obj = get_objective("apc")(enc, fe, Views({"mixup": 0.0, "rrc": False, "gain_db": 0}), shift=2)
    x = torch.randn(1, 64, 80)
    frames = enc(x)
    x2 = x.clone()
    x2[..., :20] += 3.0  # change the start: a backward causal context at late frames must not see it
    assert torch.allclose(frames[:, -5:], enc(x2)[:, -5:], atol=1e-5)
    obj.train()
    wav = torch.from_numpy(np.stack([[clips16k[0][:8000]], [clips16k[1][:8000]]])).float()
    assert obj.training_step(Batch(wav, 0, np.arange(2)))["loss"] > 0


def test_npc_representation_never_sees_its_frame():
    torch.manual_seed(0)
    enc = build_encoder(get_objective("npc").tiny_encoder).eval()
    x = torch.randn(1, 64, 40)
    x2 = x.clone()
    x2[..., 20] += 10.0
    for a, b in zip(enc.hidden_states(x), enc.hidden_states(x2)):
        assert torch.allclose(a[:, 19:22], b[:, 19:22], atol=1e-5)  # the frame and its neighbours (mask=1)
        assert not torch.allclose(a, b)


def test_wav2vec2_splits_its_distractors_between_the_clip_and_the_batch(clips16k, monkeypatch):
    import audioemb.objectives.wav2vec2 as w2v

    seen, loss = {}, w2v.masked_contrastive_loss

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return loss(*args, **kwargs)

    monkeypatch.setattr(w2v, "masked_contrastive_loss", spy)
    fe, cls = LogMel(), get_objective("wav2vec2")
    wav = torch.from_numpy(np.stack([[c[:8000]] for c in clips16k[:3]])).float()
    for mode, across, other in [("clip", False, 0), ("batch", True, 0), ("both", False, 2)]:
        obj = cls(build_encoder(cls.tiny_encoder), fe, Views({"mixup": 0.0}),
                  **{**cls.tiny_params, "distractors_from": mode})
        assert torch.isfinite(obj.training_step(Batch(wav, 0, np.arange(3)))["loss"])
        assert (seen["across_batch"], seen["from_other_clips"]) == (across, other)
    with pytest.raises(ValueError, match="distractors_from"):
        cls(build_encoder(cls.tiny_encoder), fe, Views({}), distractors_from="other")


def test_objectives_never_import_the_trainer():
    """objectives/ depends on nn/ and losses/ only: the trainer sees objectives through objectives/base.py."""
    import ast
    from pathlib import Path

    import audioemb.objectives as pkg

    for f in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert not module.startswith(("train", "audioemb.train")), f"{f.name} imports {module}"


def test_training_refuses_the_framenet_latents_readout():
    """The latents readout leaves the context out of the forward pass, so an objective that calls the encoder
    would train only the conv stack without saying so; it is an export-time readout and is refused here."""
    from audioemb.objectives import build_objective
    from audioemb.train.trainer import TrainConfig

    enc = {"type": "framenet", "dim": 32, "layers": 1, "heads": 2, "ff": 64, "channels": 16, "readout": "latents"}
    with pytest.raises(ValueError, match="--readout latents"):
        build_objective(TrainConfig(name="wav2vec2-tiny.test", objective="wav2vec2", encoder=enc))
