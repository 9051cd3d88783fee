"""Temporal order's guards against shortcuts (random gaps between the segments, a gain per segment) and its
foreign-segment term."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from audioemb.nn.encoders import build_encoder  # noqa: E402
from audioemb.nn.frontend import LogMel  # noqa: E402
from audioemb.nn.views import Views  # noqa: E402
from audioemb.objectives import get_objective  # noqa: E402
from audioemb.objectives._segments import jittered_segments, segments, swap_in_foreign  # noqa: E402
from audioemb.objectives.base import Batch  # noqa: E402
from audioemb.objectives.temporal_order import foreign_position  # noqa: E402


def test_no_jitter_is_the_plain_consecutive_segments():
    x = torch.randn(3, 8, 40)
    state = torch.get_rng_state()
    assert torch.equal(jittered_segments(x, 4, 10, 0), segments(x, 4, 10))
    assert torch.equal(torch.get_rng_state(), state)  # draws nothing: a run without gaps trains as before


def test_jittered_segments_lie_in_their_cells_with_gaps():
    torch.manual_seed(0)
    b, m, n, frames, jitter = 64, 5, 4, 6, 3
    t = torch.arange(n * (frames + jitter) + 2, dtype=torch.float32)
    x = t.expand(b, m, -1).clone()  # every frame holds its own index
    seg = jittered_segments(x, n, frames, jitter)
    assert seg.shape == (b, n, m, frames)
    start = seg[:, :, 0, 0].long()  # (B, n)
    # each segment is a contiguous slice of its clip, the same in every band
    assert torch.equal(seg, start[:, :, None, None] + torch.arange(frames).float().expand(b, n, m, frames))
    cell = frames + jitter
    offset = start - torch.arange(n) * cell
    assert offset.min() == 0 and offset.max() == jitter  # every offset in [0, jitter] is drawn
    gaps = start[:, 1:] - start[:, :-1] - frames
    assert gaps.min() >= 0 and gaps.max() <= 2 * jitter
    assert len(torch.unique(offset[:, 0])) == jitter + 1  # drawn per clip, not once per batch


def test_jittered_segments_refuse_a_short_crop():
    with pytest.raises(ValueError, match="need 36 log-mel frames"):
        jittered_segments(torch.zeros(1, 4, 35), 4, 6, 3)


def make(**params):
    torch.manual_seed(0)
    cls = get_objective("temporal_order")
    fe = LogMel()
    fe.std.copy_(torch.linspace(0.5, 2.0, len(fe.std)))
    enc = build_encoder(cls.tiny_encoder)
    return cls(enc, fe, Views({"mixup": 0.0, "rrc": False, "gain_db": 0.0}, std=fe.std),
               **{**cls.tiny_params, **params})


@pytest.mark.parametrize("params", [{"jitter_frames": -1}, {"segment_gain_db": -3.0}, {"foreign_prob": 1.5},
                                    {"foreign_prob": 0.5, "foreign_weight": -1.0}])
def test_negative_guards_are_refused(params):
    with pytest.raises(ValueError, match="must be"):
        make(**params)


def test_swap_in_foreign_takes_the_same_cell_of_the_next_clip():
    torch.manual_seed(0)
    b, n = 200, 4
    seg = torch.arange(b * n, dtype=torch.float32).view(b, n, 1, 1).expand(b, n, 3, 5).clone()
    out, foreign = swap_in_foreign(seg, 0.5)
    assert 60 < int((foreign >= 0).sum()) < 140  # about half the clips
    assert set(foreign[foreign >= 0].tolist()) == set(range(n))  # every cell can be the foreign one
    for i in range(b):
        k = int(foreign[i])
        for j in range(n):
            src = ((i + 1) % b, j) if j == k else (i, j)
            assert torch.equal(out[i, j], seg[src]), (i, j, k)
    assert not torch.equal(out, seg) and torch.equal(seg[0, 0, 0, 0], torch.tensor(0.0))  # input untouched


def test_swap_in_foreign_off_and_all():
    seg = torch.randn(3, 4, 2, 2)
    out, foreign = swap_in_foreign(seg, 0.0)
    assert torch.equal(out, seg) and (foreign == -1).all()
    out, foreign = swap_in_foreign(seg, 1.0)
    assert (foreign >= 0).all()
    with pytest.raises(ValueError, match="at least 2 clips"):
        swap_in_foreign(seg[:1], 0.5)


def test_foreign_position_follows_the_shuffle():
    order = torch.tensor([[2, 0, 3, 1], [0, 1, 2, 3], [3, 2, 1, 0]])
    foreign = torch.tensor([0, -1, 3])
    # clip 0: cell 0 sits at position 1 once shuffled -> target 2; clip 1: none -> 0; clip 2: cell 3 at 0 -> 1
    assert foreign_position(foreign, order).tolist() == [2, 0, 1]


def test_without_the_foreign_term_nothing_changes():
    obj = make(jitter_frames=4)
    assert not hasattr(obj, "foreign_head")  # checkpoints of runs without it keep their keys
    assert "foreign_head.0.weight" in make(foreign_prob=0.5).state_dict()


def test_segment_gain_is_one_level_shift_per_segment_in_normalised_units():
    obj = make(segment_gain_db=10.0)
    torch.manual_seed(1)
    shift = obj.segment_gain(256, torch.device("cpu"))  # (B, n, n_mels, 1)
    db = shift * obj.views.std.view(1, 1, -1, 1) * 20 / (2 * math.log(10))
    assert torch.allclose(db, db[:, :, :1].expand_as(db), atol=1e-4)  # one gain for all bands of a segment
    assert db.abs().max() <= 10.0 + 1e-4 and db.abs().max() > 9.0
    assert db[:, 0].std() > 1.0 and not torch.allclose(db[:, 0], db[:, 1])  # drawn per segment


def train_fixed_batch(obj, clips16k, key: str = "loss", steps: int = 15) -> tuple[list[float], dict]:
    """``obj`` trained ``steps`` times on one batch with the same draws (gaps, gains, orders, swaps) each step:
    the ``key`` loss per step, and the last step's outputs."""
    obj.frontend.fit_stats([torch.from_numpy(w) for w in clips16k])
    n_samples = 160 * (obj.n * (obj.segment_frames + obj.jitter_frames) + 1)
    wav = torch.from_numpy(np.stack([[np.resize(w, n_samples)] for w in clips16k])).float()
    opt = torch.optim.Adam([p for p in obj.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for step in range(steps):
        torch.manual_seed(0)
        out = obj.training_step(Batch(wav, step, np.arange(len(wav))))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out[key].item())
    return losses, out


def test_guarded_jigsaw_trains(clips16k):
    obj = make(jitter_frames=4, segment_gain_db=6.0)
    losses, _ = train_fixed_batch(obj, clips16k)
    assert losses[-1] < losses[0] - 0.1, losses
    assert all(p.grad is not None for p in obj.encoder.parameters() if p.requires_grad)


def test_foreign_term_trains_and_is_logged(clips16k):
    obj = make(jitter_frames=4, segment_gain_db=6.0, foreign_prob=0.5, foreign_weight=0.5)
    losses, out = train_fixed_batch(obj, clips16k, key="foreign_loss")
    assert losses[-1] < losses[0] - 0.1, losses
    assert torch.allclose(out["loss"], out["order_loss"] + 0.5 * out["foreign_loss"])
    assert 0.0 <= out["foreign_accuracy"].item() <= 1.0
    assert all(p.grad is not None for p in obj.foreign_head.parameters())


def test_without_the_shift_term_nothing_changes():
    plain = make(jitter_frames=4, foreign_prob=0.5)
    assert not hasattr(plain, "shift_head")
    with pytest.raises(ValueError, match="shift_weight must be"):
        make(shift_weight=-1.0)
    with pytest.raises(ValueError, match="max_shift must be"):
        make(shift_weight=1.0, max_shift=0)


def test_shift_term_adds_to_the_order_and_foreign_losses_and_trains(clips16k):
    obj = make(jitter_frames=4, foreign_prob=0.5, foreign_weight=0.5, shift_weight=2.0, max_shift=3)
    losses, out = train_fixed_batch(obj, clips16k, key="shift_loss", steps=25)
    assert math.isclose(losses[0], math.log(7), rel_tol=0.35)  # from about chance over 7 shifts
    assert losses[-1] < 0.6 * losses[0], losses
    assert torch.allclose(out["loss"], out["order_loss"] + 0.5 * out["foreign_loss"] + 2.0 * out["shift_loss"])
    assert not out["shift_loss"].requires_grad  # logged figures hold no graph
    obj.zero_grad()
    x = obj.views(obj.logmels(torch.from_numpy(np.stack([[np.resize(w, 16000)] for w in clips16k])).float())[:, 0])
    x = x[:, :, :obj.segment_frames]
    obj.shift_loss(x, obj.embed(x))["shift_loss"].backward()  # the term alone reaches every encoder weight
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in obj.encoder.parameters() if p.requires_grad)
