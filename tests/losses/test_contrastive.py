"""The contrastive loss family against its formulas on known inputs (Liu et al., 2022, sec. 4.1)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from audioemb.losses.contrastive import (  # noqa: E402
    CONTRASTIVE_LOSSES,
    align_uniform_loss,
    alignment_loss,
    contrastive_loss,
    info_nce_loss,
    max_margin_loss,
    npair_loss,
    nt_xent_loss,
    triplet_loss,
    uniformity_loss,
)


def rand(n=6, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


def test_max_margin_known_values():
    a = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    p = torch.tensor([[1.0, 0.0], [3.0, 0.5]])
    # positives: d=1, d=0.5 -> (1 + 0.25)/2; negatives: d(a0,p1)=sqrt(9.25)>2 -> 0, d(a1,p0)=2 -> 0
    assert math.isclose(float(max_margin_loss(a, p, margin=2.0)), 0.625, rel_tol=1e-6)
    # margin 2.5: negatives (2.5 - 3.0414)^+ = 0 and (2.5 - 2)^2 = 0.25 -> mean 0.125
    assert math.isclose(float(max_margin_loss(a, p, margin=2.5)), 0.625 + 0.125, rel_tol=1e-5)


def test_triplet_known_values():
    a, p, n = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert float(triplet_loss(a, p, n, margin=1.0)) == 0.0  # 1 - 4 + 1 < 0
    assert math.isclose(float(triplet_loss(a, p, n, margin=4.0)), 1.0)  # 1 - 4 + 4


def test_npair_matches_formula():
    a, p = rand()
    want = torch.stack([torch.log1p(sum(torch.exp(a[i] @ p[j] - a[i] @ p[i]) for j in range(len(a)) if j != i))
                        for i in range(len(a))]).mean()
    assert torch.allclose(npair_loss(a, p), want, atol=1e-5)


def test_info_nce_known_case_and_queue_formula():
    n, t = 4, 0.5
    q = torch.eye(n)
    # q_i . k_i = 1, q_i . k_j = 0  ->  -log(e^{1/t} / (e^{1/t} + (n-1)))
    want = -math.log(math.exp(1 / t) / (math.exp(1 / t) + n - 1))
    assert math.isclose(float(info_nce_loss(q, q.clone(), temperature=t)), want, rel_tol=1e-6)
    qq, k = rand(3, 4, seed=1)
    neg = rand(5, 4, seed=2)[0]
    qn, kn, nn_ = F.normalize(qq, dim=1), F.normalize(k, dim=1), F.normalize(neg, dim=1)
    terms = []
    for i in range(3):
        pos = torch.exp(qn[i] @ kn[i] / t)
        terms.append(-torch.log(pos / (pos + torch.exp(nn_ @ qn[i] / t).sum())))
    assert torch.allclose(info_nce_loss(qq, k, neg, temperature=t), torch.stack(terms).mean(), atol=1e-5)


def test_nt_xent_matches_loop_and_symmetries():
    z1, z2 = rand(5, 8)
    t = 0.3
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    terms = []
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        den = sum(torch.exp(z[i] @ z[k] / t) for k in range(2 * n) if k != i)
        terms.append(-torch.log(torch.exp(z[i] @ z[j] / t) / den))
    want = torch.stack(terms).mean()
    assert torch.allclose(nt_xent_loss(z1, z2, t), want, atol=1e-5)
    assert torch.allclose(nt_xent_loss(z2, z1, t), want, atol=1e-5)  # swapping views
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(nt_xent_loss(z1[perm], z2[perm], t), want, atol=1e-5)  # permuting the batch


def test_alignment_and_uniformity():
    x, y = rand(4, 3)
    assert float(alignment_loss(x, x)) == pytest.approx(0.0, abs=1e-7)
    pts = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    # squared distances: 4, 2, 2 -> log(mean(e^{-8}, e^{-4}, e^{-4}))
    want = math.log((math.exp(-8) + 2 * math.exp(-4)) / 3)
    assert math.isclose(float(uniformity_loss(pts, t=2.0)), want, rel_tol=1e-5)
    assert torch.allclose(align_uniform_loss(x, y), align_uniform_loss(y, x), atol=1e-6)


@pytest.mark.parametrize("name", CONTRASTIVE_LOSSES)
def test_family_prefers_matching_pairs(name):
    a, noise = rand(8, 16, seed=4)
    good = contrastive_loss(name, a, a + 0.05 * noise)
    bad = contrastive_loss(name, a, a.roll(1, dims=0) + 0.05 * noise)
    assert good < bad, (name, float(good), float(bad))
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    if name != "triplet":  # triplet's negative is the next pair, so order matters by construction
        assert torch.allclose(contrastive_loss(name, a[perm], (a + 0.05 * noise)[perm]), good, atol=1e-5)
