"""wav2vec 2.0's Gumbel product quantiser: picks, gradients, the temperature schedule and the added loss."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from audioemb.nn.encoders import build_encoder  # noqa: E402
from audioemb.nn.frontend import LogMel  # noqa: E402
from audioemb.nn.views import Views  # noqa: E402
from audioemb.objectives import get_objective  # noqa: E402
from audioemb.objectives.base import Batch  # noqa: E402
from audioemb.objectives.wav2vec2 import GumbelQuantizer  # noqa: E402
from audioemb.train.data import random_crop  # noqa: E402


def test_each_step_is_one_codeword_per_codebook():
    torch.manual_seed(0)
    quant = GumbelQuantizer(in_dim=8, dim=6, groups=2, entries=5)
    z = torch.randn(3, 4, 8)
    for training in (True, False):
        quant.train(training)
        q, probs = quant(z)
        assert q.shape == (3, 4, 6) and probs.shape == (12, 2, 5)
        torch.testing.assert_close(probs.sum(-1), torch.ones(12, 2))
        for g in range(2):  # each group's slice is exactly one entry of that codebook
            part = q.reshape(12, 2, 3)[:, g]
            dist = (part[:, None] - quant.codebooks[g][None]).abs().sum(-1)
            assert (dist.min(-1).values < 1e-6).all()
    quant.eval()  # argmax: deterministic, the most probable entry
    q1, probs = quant(z)
    q2, _ = quant(z)
    torch.testing.assert_close(q1, q2)
    want = quant.codebooks[torch.arange(2), probs.argmax(-1)].reshape(3, 4, 6)
    torch.testing.assert_close(q1, want)


def test_straight_through_gradients_reach_the_logits_and_the_codebooks():
    torch.manual_seed(0)
    quant = GumbelQuantizer(in_dim=8, dim=6, groups=2, entries=5)
    z = torch.randn(3, 4, 8, requires_grad=True)
    q, _ = quant(z)
    (q * torch.randn_like(q)).sum().backward()
    assert quant.logits.weight.grad.abs().sum() > 0 and quant.codebooks.grad.abs().sum() > 0
    assert z.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="multiple"):
        GumbelQuantizer(8, 7, groups=2)


def _objective(**params):
    cls = get_objective("wav2vec2")
    torch.manual_seed(0)
    return cls(build_encoder(cls.tiny_encoder), LogMel(), Views({"mixup": 0.0}),
               **{**cls.tiny_params, "quantize": True, "codewords": 8, **params})


def test_quantised_targets_add_the_diversity_loss(clips16k):
    obj = _objective(diversity_weight=0.5)
    rng = np.random.default_rng(0)
    wav = torch.from_numpy(np.stack([[random_crop(c, 8000, rng)] for c in clips16k[:4]])).float()
    out = obj.training_step(Batch(wav, 0, np.arange(4)))
    assert not out["contrastive_loss"].requires_grad and not out["diversity_loss"].requires_grad
    torch.testing.assert_close(out["loss"].detach(), out["contrastive_loss"] + 0.5 * out["diversity_loss"])
    assert 0 <= out["diversity_loss"] <= 1 and float(out["tau"]) == 2.0
    out["loss"].backward()
    assert obj.quantizer.codebooks.grad is not None and obj.quantizer.logits.weight.grad is not None
    assert all(p.grad is not None for p in obj.encoder.parameters() if p.requires_grad)


def test_temperature_anneals_from_2_to_half_and_is_checkpointed():
    obj = _objective(tau=(2.0, 0.5))
    assert float(obj.quantizer.tau) == 2.0
    obj.on_after_step(0, 0.5)
    assert float(obj.quantizer.tau) == pytest.approx(1.0)  # geometric: 2 * (0.5 / 2) ** 0.5
    obj.on_after_step(1, 1.0)
    assert float(obj.quantizer.tau) == pytest.approx(0.5)
    state = obj.state_dict()
    assert float(state["quantizer.tau"]) == pytest.approx(0.5)
    fresh = _objective(tau=(2.0, 0.5))
    fresh.load_state_dict(state)  # a resumed run goes on at its own temperature
    assert float(fresh.quantizer.tau) == pytest.approx(0.5)
    plain = get_objective("wav2vec2")(build_encoder(get_objective("wav2vec2").tiny_encoder), LogMel(), Views({}))
    assert plain.quantizer is None  # the default stays the unquantised recipe of the shipped model
