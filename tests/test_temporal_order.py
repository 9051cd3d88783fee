"""Temporal order's guards against shortcuts: random gaps between the segments and a gain per segment."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from audioemb.nn.encoders import build_encoder  # noqa: E402
from audioemb.nn.frontend import LogMel  # noqa: E402
from audioemb.nn.views import Views  # noqa: E402
from audioemb.objectives import get_objective  # noqa: E402
from audioemb.objectives._segments import jittered_segments, segments  # noqa: E402
from audioemb.objectives.base import Batch  # noqa: E402


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


@pytest.mark.parametrize("params", [{"jitter_frames": -1}, {"segment_gain_db": -3.0}])
def test_negative_guards_are_refused(params):
    with pytest.raises(ValueError, match="must be >= 0"):
        make(**params)


def test_segment_gain_is_one_level_shift_per_segment_in_normalised_units():
    obj = make(segment_gain_db=10.0)
    torch.manual_seed(1)
    shift = obj.segment_gain(256, torch.device("cpu"))  # (B, n, n_mels, 1)
    db = shift * obj.views.std.view(1, 1, -1, 1) * 20 / (2 * math.log(10))
    assert torch.allclose(db, db[:, :, :1].expand_as(db), atol=1e-4)  # one gain for all bands of a segment
    assert db.abs().max() <= 10.0 + 1e-4 and db.abs().max() > 9.0
    assert db[:, 0].std() > 1.0 and not torch.allclose(db[:, 0], db[:, 1])  # drawn per segment


def test_guarded_jigsaw_trains(clips16k):
    obj = make(jitter_frames=4, segment_gain_db=6.0)
    obj.frontend.fit_stats([torch.from_numpy(w) for w in clips16k])
    n_samples = 160 * (obj.n * (obj.segment_frames + 4) + 1)
    wav = torch.from_numpy(np.stack([[np.resize(w, n_samples)] for w in clips16k])).float()
    opt = torch.optim.Adam([p for p in obj.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for step in range(15):
        torch.manual_seed(0)  # the same gaps, gains and orders every step: a loss on a fixed batch
        out = obj.training_step(Batch(wav, step, np.arange(len(wav))))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < losses[0] - 0.1, losses
    assert all(p.grad is not None for p in obj.encoder.parameters() if p.requires_grad)
