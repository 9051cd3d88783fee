"""Augmented views: shapes, what each view changes and what it keeps."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from audioemb.nn.views import Views, mel_shift, random_resize_crop, spec_augment  # noqa: E402


def test_gain_is_an_exact_log_shift():
    std = torch.full((64,), 2.0)
    v = Views({"mixup": 0, "rrc": False, "gain_db": 6.0}, std=std)
    x = torch.zeros(8, 64, 50)
    torch.manual_seed(0)
    y = v(x)
    shift = y[:, 0, 0]
    assert torch.allclose(y, shift[:, None, None].expand_as(y))  # one level change per example
    assert (shift.abs() <= 2 * math.log(10) * 6 / 20 / 2 + 1e-6).all()


def test_rrc_without_frequency_change_keeps_the_band():
    x = torch.zeros(4, 64, 100)
    x[:, 30:34] = 5.0  # energy in mel bins 30-33 only
    torch.manual_seed(0)
    y = random_resize_crop(x, (1.0, 1.5), (0.6, 1.5), (1.0, 1.0))
    profile = y.mean(dim=2)
    assert profile.shape == (4, 64)
    assert (profile[:, 30:34].mean(dim=1) > 5 * profile[:, :28].abs().mean(dim=1)).all()
    assert (profile.argmax(dim=1) >= 29).all() and (profile.argmax(dim=1) <= 34).all()


def test_rrc_with_frequency_scaling_moves_the_band():
    x = torch.zeros(16, 64, 100)
    x[:, 30:34] = 5.0
    torch.manual_seed(0)
    y = random_resize_crop(x, (1.5, 1.5), (1.0, 1.0), (0.6, 1.5))
    assert len(set(y.mean(dim=2).argmax(dim=1).tolist())) > 3  # pitch/formant positions vary


def test_spec_augment_masks_and_mel_shift():
    x = torch.ones(3, 64, 100)
    torch.manual_seed(0)
    y = spec_augment(x, 2, 8, 2, 10)
    zeros = (y == 0).float().mean()
    assert 0 < zeros < 0.5
    ramp = torch.arange(64.0)[None, :, None].expand(2, 64, 5)
    torch.manual_seed(1)
    s = mel_shift(ramp, 3)
    d = s[:, 5:59] - ramp[:, 5:59]  # away from the edges every bin moves by the same whole number
    assert s.shape == ramp.shape and (d == d[:, :1]).all() and (d.abs() <= 3).all()


def test_mixup_uses_earlier_clips_only_after_the_first_batch():
    v = Views({"mixup": 0.4, "rrc": False, "gain_db": 0})
    a = torch.randn(4, 64, 20)
    assert torch.equal(v(a), a)  # nothing in memory yet
    b = torch.randn(4, 64, 20)
    assert not torch.equal(v(b), b)
    assert len(v.memory) == 8


def test_mixup_memory_ring_mixes_exactly_what_the_concatenated_memory_did():
    """The ring buffer (written in place) must draw the same earlier clips as the old ``torch.cat`` memory,
    oldest first, through wrap-arounds and a checkpoint round trip (resume stays exact)."""
    cap, cfg = 7, {"mixup": 0.4, "rrc": False, "gain_db": 0, "mixup_memory": 7}

    def old_mix(memory, x):  # the former implementation, kept here as the reference
        out = x
        if memory is not None and len(memory):
            idx = torch.randint(len(memory), (x.shape[0],))
            m = memory[idx]
            lam = torch.rand(x.shape[0], 1, 1) * 0.4
            out = torch.log((1 - lam) * x.exp() + lam * m.exp())
        memory = x if memory is None else torch.cat([memory, x])[-cap:]
        return out, memory

    v, ref = Views(cfg), None
    g = torch.Generator().manual_seed(0)
    for step, b in enumerate([3, 3, 3, 2, 5, 9, 1, 3]):
        x = torch.randn(b, 4, 6, generator=g)
        torch.manual_seed(step)
        want, ref = old_mix(ref, x)
        torch.manual_seed(step)
        assert torch.allclose(v.mix(x), want, atol=1e-6)
        assert torch.equal(v.memory, ref)
        if step == 4:  # a checkpoint saves the memory and a resumed run sets it back
            v2 = Views(cfg)
            v2.memory = v.memory.clone()
            v = v2
