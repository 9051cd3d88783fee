"""CPC's and wav2vec 2.0's contrastive predictive losses against their formulas, draw by draw."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from audioemb.losses.predictive import cpc_loss, masked_contrastive_loss  # noqa: E402


def _cos(a, b) -> float:
    return float((a @ b) / (a.norm() * b.norm()))


def _nce(pos: float, negs: list[float]) -> float:
    """-log softmax of the positive among the positive and the negatives."""
    return -pos + math.log(math.exp(pos) + sum(math.exp(n) for n in negs))


@pytest.mark.parametrize("across_batch", [False, True])
def test_masked_contrastive_loss_is_eq3_of_wav2vec2(across_batch):
    b, t, d, k, tau = 3, 7, 4, 5, 0.1
    g = torch.Generator().manual_seed(0)
    c, q = torch.randn(b, t, d, generator=g), torch.randn(b, t, d, generator=g)
    mask = torch.rand(b, t, generator=g) < 0.4
    got = masked_contrastive_loss(c, q, mask, k, tau, torch.Generator().manual_seed(1), across_batch=across_batch)
    # the same draws, replayed: an offset in [1, span) from the masked step's own index
    bi, ti = mask.nonzero(as_tuple=True)
    span = b * t if across_batch else t
    off = torch.randint(1, span, (len(bi), k), generator=torch.Generator().manual_seed(1))
    want, seen_other_clip = 0.0, False
    for n, (i, j) in enumerate(zip(bi.tolist(), ti.tolist())):
        negs = []
        for o in off[n].tolist():
            if across_batch:
                flat = (i * t + j + o) % (b * t)
                ni, nj = divmod(flat, t)
            else:
                ni, nj = i, (j + o) % t
            assert (ni, nj) != (i, j)  # never the positive itself
            seen_other_clip |= ni != i
            negs.append(_cos(c[i, j], q[ni, nj]) / tau)
        want += _nce(_cos(c[i, j], q[i, j]) / tau, negs)
    assert got.item() == pytest.approx(want / len(bi), rel=1e-5)
    assert seen_other_clip == across_batch


def test_masked_contrastive_loss_mixes_same_clip_and_other_clip_distractors():
    b, t, d, k, m, tau = 3, 7, 4, 6, 2, 0.1
    g = torch.Generator().manual_seed(0)
    c, q = torch.randn(b, t, d, generator=g), torch.randn(b, t, d, generator=g)
    mask = torch.rand(b, t, generator=g) < 0.4
    got = masked_contrastive_loss(c, q, mask, k, tau, torch.Generator().manual_seed(1), from_other_clips=m)
    # the same draws, replayed: k - m offsets within the clip, then m (other clip, any step) pairs
    bi, ti = mask.nonzero(as_tuple=True)
    replay = torch.Generator().manual_seed(1)
    off = torch.randint(1, t, (len(bi), k - m), generator=replay)
    other_off = torch.randint(1, b, (len(bi), m), generator=replay)
    other_t = torch.randint(0, t, (len(bi), m), generator=replay)
    want = 0.0
    for n, (i, j) in enumerate(zip(bi.tolist(), ti.tolist())):
        same = [(i, (j + o) % t) for o in off[n].tolist()]
        other = [((i + o) % b, s) for o, s in zip(other_off[n].tolist(), other_t[n].tolist())]
        assert all(ni == i and nj != j for ni, nj in same) and all(ni != i for ni, _ in other)
        negs = [_cos(c[i, j], q[ni, nj]) / tau for ni, nj in same + other]
        want += _nce(_cos(c[i, j], q[i, j]) / tau, negs)
    assert got.item() == pytest.approx(want / len(bi), rel=1e-5)
    with pytest.raises(ValueError, match="from_other_clips"):
        masked_contrastive_loss(c, q, mask, k, tau, from_other_clips=k + 1)
    with pytest.raises(ValueError, match="batch of 1"):
        masked_contrastive_loss(c[:1], q[:1], mask[:1], k, tau, from_other_clips=1)


def test_cpc_loss_is_infonce_over_k_steps_ahead():
    b, t, d, n_neg = 2, 5, 3, 4
    g = torch.Generator().manual_seed(0)
    ctx, z = torch.randn(b, t, d, generator=g), torch.randn(b, t, d, generator=g)
    preds = [torch.nn.Linear(d, d, bias=False) for _ in range(2)]
    got = cpc_loss(ctx, z, preds, n_neg, torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    flat, total = z.reshape(b * t, d), 0.0
    for k, w in enumerate(preds, start=1):
        idx = torch.randint(0, b * t, (b, t - k, n_neg), generator=replay)
        terms = []
        with torch.no_grad():
            for i in range(b):
                for j in range(t - k):
                    p = w(ctx[i, j])
                    terms.append(_nce(float(p @ z[i, j + k]), [float(p @ flat[m]) for m in idx[i, j].tolist()]))
        total += sum(terms) / len(terms)
    assert got.item() == pytest.approx(total / len(preds), rel=1e-5)
