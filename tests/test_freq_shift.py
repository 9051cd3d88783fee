"""The band-shift term (byol_frames, CPC, MPC): shifted views move content only, and the term trains."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from audioemb.objectives._freqshift import random_shifts, shift_bands  # noqa: E402

from .conftest import fit_fixed_batch, tiny_objective  # noqa: E402


def test_shift_moves_content_and_blanks_the_same_edges_whatever_the_shift():
    x = torch.randn(3, 16, 5)
    out = shift_bands(x, torch.tensor([2, -3, 0]), margin=3)
    fill = x.amin(dim=(1, 2))
    for b, k in enumerate([2, -3, 0]):
        assert torch.equal(out[b, 3:13], x[b, 3 - k:13 - k])  # band m of the shifted view is band m - k
        assert torch.all(out[b, :3] == fill[b]) and torch.all(out[b, 13:] == fill[b])


def test_shift_refuses_shifts_beyond_the_blanked_margin():
    with pytest.raises(ValueError, match="within"):
        shift_bands(torch.randn(1, 16, 5), torch.tensor([4]), margin=3)
    with pytest.raises(ValueError, match="margin"):
        shift_bands(torch.randn(1, 16, 5), torch.tensor([0]), margin=8)


def test_random_shifts_cover_the_range():
    torch.manual_seed(0)
    s = random_shifts(2000, 3)
    assert set(s.tolist()) == set(range(-3, 4))


# each objective that takes the term, and the figures its own loss terms are logged as
TERMS = {"byol_frames": ("clip_loss", "frame_loss"), "cpc": ("cpc_loss",), "mpc": ("mpc_loss",),
         "wav2vec2": ("wav2vec2_loss",)}


@pytest.mark.parametrize("name", sorted(TERMS))
def test_objective_without_the_term_is_unchanged_and_with_it_trains(clips16k, name):
    build, batch = tiny_objective(name, clips16k)
    plain = build()
    assert not hasattr(plain, "shift_head")
    torch.manual_seed(1)
    base = plain.training_step(batch)
    assert "shift_loss" not in base
    with pytest.raises(ValueError, match="shift_weight must be"):
        build(shift_weight=-1.0)
    obj = build(shift_weight=1.0, max_shift=3)
    torch.manual_seed(1)  # the term draws after the other terms: their values are the same
    out = obj.training_step(batch)
    for key in TERMS[name]:
        assert torch.allclose(out[key], base[key] if key in base else base["loss"]), key
    assert torch.allclose(out["loss"], base["loss"] + out["shift_loss"])
    assert not out["shift_loss"].requires_grad  # logged figures hold no graph
    seen = fit_fixed_batch(obj, batch, 40, "shift_loss")  # the same masks and shifts every step
    assert seen[-1] < 0.5 * seen[0]  # from chance (ln 7 = 1.95) towards naming the shift
    obj.zero_grad()
    v = obj.views(obj.logmels(batch.waveforms)[:, -1])
    obj.shift_loss(v, obj.embed(v))["shift_loss"].backward()  # the term alone reaches every encoder weight
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in obj.encoder.parameters() if p.requires_grad)
