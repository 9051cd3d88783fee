"""Numpy signal processing shared by the torch frontend and the torch-free baselines."""

from __future__ import annotations

import numpy as np


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> np.ndarray:
    """Triangular HTK mel filters without area normalisation, shape (n_freqs, n_mels).

    Same construction as ``torchaudio.functional.melscale_fbanks(..., norm=None, mel_scale="htk")``.
    """
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    m_pts = np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    f_pts = mel_to_hz(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up))


def hann_window(win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hann window (as ``torch.hann_window``) centred in ``n_fft`` samples."""
    n = np.arange(win_length)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / win_length)
    left = (n_fft - win_length) // 2
    w = np.zeros(n_fft)
    w[left:left + win_length] = window
    return w


def dft_kernels(n_fft: int, win_length: int) -> np.ndarray:
    """Windowed real-DFT basis as Conv1d weights, shape (2 * (n_fft // 2 + 1), 1, n_fft): cos rows, then -sin."""
    w = hann_window(win_length, n_fft)
    angle = 2 * np.pi * np.outer(np.arange(n_fft // 2 + 1), np.arange(n_fft)) / n_fft
    basis = np.concatenate([np.cos(angle) * w, -np.sin(angle) * w], axis=0)
    return basis[:, None, :]


def log_mel(wav: np.ndarray, sample_rate: int = 16000, n_fft: int = 400, win_length: int = 400,
            hop_length: int = 160, n_mels: int = 64, f_min: float = 60.0, f_max: float = 7800.0,
            eps: float = 1e-6, **_) -> np.ndarray:
    """Log-mel spectrogram (n_mels, frames) of a 1-D waveform, with the frontend's conventions
    (centred frames, reflect padding, power spectrum, log(mel + eps))."""
    pad = n_fft // 2
    x = np.pad(np.asarray(wav, dtype=np.float64), (pad, pad), mode="reflect" if len(wav) > pad else "constant")
    n_frames = 1 + (len(x) - n_fft) // hop_length
    idx = np.arange(n_fft)[None, :] + hop_length * np.arange(n_frames)[:, None]
    spec = np.fft.rfft(x[idx] * hann_window(win_length, n_fft), axis=1)
    power = spec.real**2 + spec.imag**2
    mel = power @ mel_filterbank(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate)
    return np.log(mel + eps).T.astype(np.float32)
