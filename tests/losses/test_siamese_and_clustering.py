"""BYOL, SimSiam, Barlow Twins, SwAV and Local Aggregation losses on known inputs."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from audioemb.losses.byol import byol_loss  # noqa: E402
from audioemb.losses.clustering import local_aggregation_loss, sinkhorn, swapped_prediction_loss  # noqa: E402
from audioemb.losses.siamese import barlow_twins_loss, cross_correlation, simsiam_loss  # noqa: E402


def test_byol_known_values():
    z = torch.randn(4, 8)
    assert float(byol_loss(z, z)) == pytest.approx(0.0, abs=1e-6)
    assert float(byol_loss(-z, z)) == pytest.approx(4.0, abs=1e-6)
    e = torch.eye(2)
    assert float(byol_loss(e, e.flip(0))) == pytest.approx(2.0)
    assert float(byol_loss(3 * z, z)) == pytest.approx(0.0, abs=1e-6)  # scale invariant
    p = torch.randn(4, 8, requires_grad=True)
    t = torch.randn(4, 8, requires_grad=True)
    byol_loss(p, t).backward()
    assert t.grad is None and p.grad is not None  # the target gets no gradient


def test_simsiam_stop_gradient():
    z = torch.randn(5, 6, requires_grad=True)
    p = torch.randn(5, 6, requires_grad=True)
    assert float(simsiam_loss(z, z)) == pytest.approx(-1.0, abs=1e-6)
    simsiam_loss(p, z).backward()
    assert z.grad is None


def test_barlow_twins_identity_gives_zero_and_formula():
    # two perfectly correlated, mutually decorrelated dimensions: C = I
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert torch.allclose(cross_correlation(z, z), torch.eye(2), atol=1e-6)
    assert float(barlow_twins_loss(z, z)) == pytest.approx(0.0, abs=1e-6)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 4, generator=g), torch.randn(16, 4, generator=g)
    c = cross_correlation(a, b)
    lam = 0.1
    off = sum(c[i, j] ** 2 for i in range(4) for j in range(4) if i != j)
    want = sum((1 - c[i, i]) ** 2 for i in range(4)) + lam * off
    assert torch.allclose(barlow_twins_loss(a, b, lam), want, atol=1e-5)
    assert torch.allclose(barlow_twins_loss(b, a, lam), want, atol=1e-5)  # swapping views
    perm = torch.randperm(16, generator=g)
    assert torch.allclose(barlow_twins_loss(a[perm], b[perm], lam), want, atol=1e-5)  # permuting the batch


def test_sinkhorn_equipartition():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(32, 8, generator=g)
    q = sinkhorn(scores, epsilon=0.5, iterations=50)
    assert torch.allclose(q.sum(dim=1), torch.ones(32), atol=1e-4)  # each sample's code sums to 1
    assert torch.allclose(q.sum(dim=0), torch.full((8,), 4.0), atol=1e-3)  # each prototype gets B / K


def test_swapped_prediction_known_case():
    # one-hot scores, tiny epsilon: codes are one-hot; the loss is the cross-entropy of the other view
    s = torch.eye(4) * 10
    loss = swapped_prediction_loss([s, s], n_assign=2, temperature=1.0, epsilon=0.05, iterations=10)
    want = -torch.log_softmax(s, dim=1).diagonal().mean()
    assert torch.allclose(loss, want, atol=1e-4)
    s2 = s.roll(1, dims=1)
    assert swapped_prediction_loss([s, s2], 2, 1.0) > loss


def test_local_aggregation_formula():
    sim = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    background = torch.tensor([[True, True, True, False]])
    close = torch.tensor([[True, True, False, True]])  # C ∩ B = {0, 1}
    want = -math.log((math.exp(2) + math.exp(1)) / (math.exp(2) + math.exp(1) + math.exp(0)))
    assert float(local_aggregation_loss(sim, background, close)) == pytest.approx(want, rel=1e-5)
