"""The Conv1d-DFT log-mel frontend against torchaudio's MelSpectrogram and the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchaudio = pytest.importorskip("torchaudio")

from audioemb.dsp import log_mel, mel_filterbank  # noqa: E402
from audioemb.nn.frontend import LogMel, LogMelConfig  # noqa: E402


@pytest.mark.parametrize("cfg", [
    LogMelConfig(),
    LogMelConfig(n_fft=512, win_length=400, hop_length=160, n_mels=80, f_min=0.0, f_max=8000.0),
    LogMelConfig(sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, n_mels=64, f_min=60, f_max=11000),
])
def test_matches_torchaudio_melspectrogram(cfg, clips16k):
    ref = torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length, hop_length=cfg.hop_length,
        f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels, power=2.0, center=True, pad_mode="reflect",
        norm=None, mel_scale="htk")
    fe = LogMel(cfg)
    for w in clips16k:
        x = torch.from_numpy(w)[None]
        want = torch.log(ref(x) + cfg.eps)
        got = fe(x)  # normalisation stats are the identity until fitted
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=2e-3, rtol=1e-4), float((got - want).abs().max())


def test_filterbank_matches_torchaudio():
    ours = mel_filterbank(201, 60.0, 7800.0, 64, 16000)
    ref = torchaudio.functional.melscale_fbanks(201, 60.0, 7800.0, 64, 16000, norm=None, mel_scale="htk").numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5)  # torchaudio builds it in float32


def test_numpy_log_mel_matches_module(clips16k):
    fe = LogMel()
    for w in clips16k[:4]:
        a = fe.log_mel(torch.from_numpy(w)[None])[0].numpy()
        b = log_mel(w, **LogMelConfig().to_dict())
        np.testing.assert_allclose(a, b, atol=2e-3)


def test_normalisation_stats_are_saved_buffers(clips16k):
    fe = LogMel()
    fe.fit_stats([torch.from_numpy(w) for w in clips16k])
    state = fe.state_dict()
    assert set(state) == {"mean", "std"}  # DFT kernels and filterbank are rebuilt, not stored
    z = torch.cat([fe(torch.from_numpy(w)[None])[0] for w in clips16k], dim=1)
    assert z.mean(dim=1).abs().max() < 1e-3
    assert (z.std(dim=1) - 1).abs().max() < 1e-2


def test_frame_count_and_min_length():
    fe = LogMel()
    for n in (fe.min_samples, 1600, 16000, 16001):
        assert fe(torch.zeros(1, n)).shape[-1] == 1 + n // 160
