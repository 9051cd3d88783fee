"""Waveform -> normalised log-mel spectrogram, as an ``nn.Module`` that exports to ONNX.

The STFT is a strided ``Conv1d`` whose kernels are the windowed DFT basis (as in torchlibrosa), so it
runs fast in both torch and onnxruntime, where the ONNX STFT operator is slow. The result matches
``torchaudio.transforms.MelSpectrogram(center=True, pad_mode="reflect", power=2, norm=None,
mel_scale="htk")`` followed by ``log(x + eps)``. Per-band normalisation statistics, measured on the
training corpus, are buffers saved with the model, so users never paste them by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..dsp import dft_kernels, mel_filterbank
from ..model_config import LogMelConfig

__all__ = ["LogMel", "LogMelConfig"]


class LogMel(nn.Module):
    """(batch, samples) float waveform -> (batch, n_mels, frames) normalised log-mel, frames = 1 + samples // hop.

    Inputs must be longer than ``n_fft // 2`` samples (reflect padding); :meth:`min_samples` says so.
    """

    def __init__(self, cfg: LogMelConfig | None = None):
        super().__init__()
        self.cfg = cfg or LogMelConfig()
        c = self.cfg
        self.register_buffer("dft", torch.tensor(dft_kernels(c.n_fft, c.win_length), dtype=torch.float32),
                             persistent=False)
        fb = mel_filterbank(c.n_fft // 2 + 1, c.f_min, c.f_max, c.n_mels, c.sample_rate)
        self.register_buffer("mel_fb", torch.tensor(fb, dtype=torch.float32), persistent=False)
        self.register_buffer("mean", torch.zeros(c.n_mels))
        self.register_buffer("std", torch.ones(c.n_mels))

    @property
    def min_samples(self) -> int:
        return self.cfg.n_fft // 2 + 1

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """Un-normalised log-mel, (batch, n_mels, frames)."""
        c = self.cfg
        pad = c.n_fft // 2
        x = F.pad(wav.unsqueeze(1), (pad, pad), mode="reflect")
        spec = F.conv1d(x, self.dft, stride=c.hop_length)
        n = c.n_fft // 2 + 1
        power = spec[:, :n] ** 2 + spec[:, n:] ** 2
        mel = torch.matmul(power.transpose(1, 2), self.mel_fb).transpose(1, 2)
        return torch.log(mel + c.eps)

    def normalize(self, logmel: torch.Tensor) -> torch.Tensor:
        return (logmel - self.mean[:, None]) / self.std[:, None]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.log_mel(wav))

    @torch.no_grad()
    def fit_stats(self, waves: list[torch.Tensor]) -> None:
        """Set the per-band mean and std from un-normalised log-mels of ``waves`` (1-D tensors)."""
        frames = torch.cat([self.log_mel(w[None])[0] for w in waves], dim=1)
        self.mean.copy_(frames.mean(dim=1))
        self.std.copy_(frames.std(dim=1).clamp_min(1e-3))
