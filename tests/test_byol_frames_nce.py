"""byol_frames' optional in-batch InfoNCE term: off by default, the symmetric formula when on, and it trains."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from .conftest import fit_fixed_batch, tiny_objective  # noqa: E402


@pytest.fixture
def setup(clips16k):
    return tiny_objective("byol_frames", clips16k)


def _nce(q: torch.Tensor, k: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE by hand: row i of q against every row of k, k[i] the positive, cosine similarity over tau."""
    qn, kn = q / q.norm(dim=1, keepdim=True), k / k.norm(dim=1, keepdim=True)
    logits = qn @ kn.T / tau
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()


def test_off_by_default_and_added_with_its_weight(setup):
    build, batch = setup
    torch.manual_seed(1)
    base = build().training_step(batch)
    assert "nce_loss" not in base
    torch.manual_seed(1)
    out = build(nce_weight=0.5).training_step(batch)
    assert torch.allclose(out["clip_loss"], base["clip_loss"]) and torch.allclose(out["frame_loss"], base["frame_loss"])
    assert torch.allclose(out["loss"], base["loss"] + 0.5 * out["nce_loss"])
    assert not out["nce_loss"].requires_grad
    for bad in ({"nce_weight": -1.0}, {"nce_weight": 1.0, "nce_tau": 0.0}):
        with pytest.raises(ValueError, match="nce_weight must be"):
            build(**bad)


def test_is_the_symmetric_infonce_of_each_prediction_against_the_other_views_target(setup, monkeypatch):
    build, batch = setup
    obj = build(nce_weight=1.0, nce_tau=0.3)
    g = torch.Generator().manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(len(batch.waveforms), 8, generator=g) for _ in range(4))
    monkeypatch.setattr(obj, "predictions", lambda *a: (p1, p2, z1, z2))
    out = obj.training_step(batch)
    assert torch.allclose(out["nce_loss"], _nce(p1, z2, 0.3) + _nce(p2, z1, 0.3), atol=1e-6)
    assert not torch.allclose(out["nce_loss"], _nce(p1, z1, 0.3) + _nce(p2, z2, 0.3), atol=1e-3)


def test_the_term_trains(setup):
    build, batch = setup
    losses = fit_fixed_batch(build(nce_weight=1.0), batch, 30, "nce_loss")  # the same views every step
    assert losses[-1] < 0.7 * losses[0]
