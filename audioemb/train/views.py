"""Augmented views of normalised log-mel spectrograms, configured per objective.

- log-mixup-exp with a memory of earlier clips (BYOL-A, Niizumi et al., 2021, sec. 3.2);
- random resize crop of the time-frequency image (BYOL-A, sec. 3.3);
- gain: a random level change, an exact additive shift in the log-mel domain;
- SpecAugment time and frequency masks (Park et al., 2019);
- mel shift: a small shift along the mel axis, an approximate pitch change.

Waveform-level views (crops of the same recording as positives, speed change with soxr) are made by the
data loader, :mod:`audioemb.train.data`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass
class ViewConfig:
    mixup: float = 0.4  # upper bound of the mixing ratio; 0 disables
    mixup_memory: int = 2048
    rrc: bool = True
    rrc_virtual_scale: float = 1.5  # time axis
    rrc_freq_virtual_scale: float = 1.5  # frequency axis; 1.0 with rrc_freq_scale (1, 1) keeps pitch intact
    rrc_time_scale: tuple[float, float] = (0.6, 1.5)
    rrc_freq_scale: tuple[float, float] = (0.6, 1.5)
    gain_db: float = 6.0  # +- uniform, 0 disables
    time_masks: int = 0
    time_mask_frames: int = 10
    freq_masks: int = 0
    freq_mask_bins: int = 8
    mel_shift: int = 0  # +- mel bins, 0 disables

    def to_dict(self) -> dict:
        return asdict(self)


class Views:
    """Callable that turns a batch (B, n_mels, T) of normalised log-mels into one augmented view each.

    ``std`` is the frontend's per-band std (gain is applied in un-normalised units). The mixup memory
    is state, so call it once per view.
    """

    def __init__(self, cfg: ViewConfig | dict | None = None, std: torch.Tensor | None = None):
        self.cfg = ViewConfig(**cfg) if isinstance(cfg, dict) else (cfg or ViewConfig())
        self.std = std
        self.memory: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        x = x.clone()
        if c.gain_db:
            x = self.gain(x)
        if c.mixup:
            x = self.mix(x)
        if c.rrc:
            x = random_resize_crop(x, (c.rrc_freq_virtual_scale, c.rrc_virtual_scale), c.rrc_time_scale,
                                   c.rrc_freq_scale)
        if c.mel_shift:
            x = mel_shift(x, c.mel_shift)
        if c.freq_masks or c.time_masks:
            x = spec_augment(x, c.freq_masks, c.freq_mask_bins, c.time_masks, c.time_mask_frames)
        return x

    def gain(self, x: torch.Tensor) -> torch.Tensor:
        db = (torch.rand(x.shape[0], 1, 1) * 2 - 1) * self.cfg.gain_db
        shift = 2 * math.log(10) * db / 20  # log(g^2 * power) = log(power) + 2 log(g)
        std = self.std.view(1, -1, 1) if self.std is not None else 1.0
        return x + shift / std

    @torch.no_grad()
    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """log((1 - l) exp(x) + l exp(m)), l ~ U(0, ratio), m a random earlier clip (BYOL-A's Mixup)."""
        out = x
        if self.memory is not None and len(self.memory):
            idx = torch.randint(len(self.memory), (x.shape[0],))
            m = self.memory[idx]
            t = min(m.shape[-1], x.shape[-1])
            lam = (torch.rand(x.shape[0], 1, 1) * self.cfg.mixup)
            mixed = torch.log((1 - lam) * x[..., :t].exp() + lam * m[..., :t].exp())
            out = torch.cat([mixed, x[..., t:]], dim=-1)
        new = x.detach()
        self.memory = new if self.memory is None else torch.cat([self.memory, new])[-self.cfg.mixup_memory:]
        return out


def random_resize_crop(x: torch.Tensor, virtual_scale: tuple[float, float], time_scale: tuple[float, float],
                       freq_scale: tuple[float, float]) -> torch.Tensor:
    """BYOL-A's RandomResizeCrop: crop a random box of a zero-padded canvas, resize it back (bicubic).

    ``virtual_scale`` is the canvas size (frequency, time) relative to the input.
    """
    b, f, t = x.shape
    vf, vt = int(f * virtual_scale[0]), int(t * virtual_scale[1])
    canvas = x.new_zeros(b, vf, vt)
    f0, t0 = (vf - f) // 2, (vt - t) // 2
    canvas[:, f0:f0 + f, t0:t0 + t] = x
    out = torch.empty_like(x)
    for i in range(b):
        cf = min(vf, max(1, int(f * _uniform(*freq_scale))))
        ct = min(vt, max(1, int(t * _uniform(*time_scale))))
        i0 = int(torch.randint(vf - cf + 1, ()))
        j0 = int(torch.randint(vt - ct + 1, ()))
        crop = canvas[i, i0:i0 + cf, j0:j0 + ct][None, None]
        out[i] = F.interpolate(crop, size=(f, t), mode="bicubic", align_corners=True)[0, 0]
    return out


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()))


def spec_augment(x: torch.Tensor, freq_masks: int, freq_width: int, time_masks: int, time_width: int) -> torch.Tensor:
    """Zero (the normalised mean) ``freq_masks`` bands of up to ``freq_width`` bins and ``time_masks``
    spans of up to ``time_width`` frames per example (SpecAugment, Park et al., 2019)."""
    b, f, t = x.shape
    out = x.clone()
    for _ in range(freq_masks):
        w = torch.randint(0, freq_width + 1, (b,))
        s = (torch.rand(b) * (f - w).clamp_min(1)).long()
        band = torch.arange(f)[None]
        out = out.masked_fill(((band >= s[:, None]) & (band < (s + w)[:, None]))[:, :, None], 0.0)
    for _ in range(time_masks):
        w = torch.randint(0, time_width + 1, (b,))
        s = (torch.rand(b) * (t - w).clamp_min(1)).long()
        span = torch.arange(t)[None]
        out = out.masked_fill(((span >= s[:, None]) & (span < (s + w)[:, None]))[:, None, :], 0.0)
    return out


def mel_shift(x: torch.Tensor, max_bins: int) -> torch.Tensor:
    """Shift each example along the mel axis by a random whole number of bins, repeating the edge bin."""
    b, f, _ = x.shape
    shifts = torch.randint(-max_bins, max_bins + 1, (b,))
    idx = (torch.arange(f)[None] - shifts[:, None]).clamp(0, f - 1)
    return torch.gather(x, 1, idx[:, :, None].expand_as(x))
