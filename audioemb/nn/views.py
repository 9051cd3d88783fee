"""Augmented views of normalised log-mel spectrograms, configured per objective.

- log-mixup-exp with a memory of earlier clips (BYOL-A, Niizumi et al., 2021, sec. 3.2);
- random resize crop of the time-frequency image (BYOL-A, sec. 3.3);
- gain: a random level change, an exact additive shift in the log-mel domain;
- random linear fader: a level that ramps over the crop (BYOL-A v2, Niizumi et al., 2023);
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
    fader: float = 0.0  # random linear fader: gain ramps between +- this many dB over the crop; 0 disables

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
        self._buf: torch.Tensor | None = None  # the mixup memory: a ring of earlier clips, written in place
        self._head = self._n = 0  # physical row of the oldest clip; clips held

    @property
    def memory(self) -> torch.Tensor | None:
        """The mixup memory, oldest clip first (what a checkpoint saves), or None while empty."""
        if self._buf is None or not self._n:
            return None
        return self._buf[(self._head + torch.arange(self._n, device=self._buf.device)) % len(self._buf)]

    @memory.setter
    def memory(self, m: torch.Tensor | None) -> None:
        self._buf, self._head, self._n = None, 0, 0
        if m is not None and len(m):
            self._remember(m)

    def _remember(self, new: torch.Tensor) -> None:
        """Append clips, dropping the oldest beyond ``mixup_memory``; in place, so no step allocates or
        copies the whole memory (torch.cat did: about 50 MB per view at 2,048 one-second clips)."""
        cap = self.cfg.mixup_memory
        if self._buf is None or self._buf.shape[1:] != new.shape[1:] or self._buf.dtype != new.dtype:
            self._buf, self._head, self._n = new.new_empty((cap, *new.shape[1:])), 0, 0
        new = new[-cap:]
        pos = (self._head + self._n + torch.arange(len(new), device=new.device)) % cap
        self._buf[pos] = new
        total = self._n + len(new)
        self._head, self._n = (self._head + max(0, total - cap)) % cap, min(cap, total)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        x = x.clone()
        if c.gain_db:
            x = self.gain(x)
        if c.fader:
            x = self.fade(x)
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
        db = ((torch.rand(x.shape[0], 1, 1) * 2 - 1) * self.cfg.gain_db).to(x.device)
        return x + db_shift(db, self.std)

    def fade(self, x: torch.Tensor) -> torch.Tensor:
        """Random Linear Fader (BYOL-A v2, Niizumi et al., 2023): a gain that ramps linearly over time,
        from one random level to another in [-fader, +fader] dB: an exact additive ramp in the log domain."""
        b, _, t = x.shape
        ends = ((torch.rand(b, 2) * 2 - 1) * self.cfg.fader * 2 * math.log(10) / 20).to(x.device)
        ramp = ends[:, :1] + (ends[:, 1:] - ends[:, :1]) * torch.linspace(0, 1, t, device=x.device)[None]
        std = self.std.view(1, -1, 1) if self.std is not None else 1.0
        return x + ramp[:, None, :] / std

    @torch.no_grad()
    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """log((1 - l) exp(x) + l exp(m)), l ~ U(0, ratio), m a random earlier clip (BYOL-A's Mixup)."""
        out = x
        if self._n:
            idx = torch.randint(self._n, (x.shape[0],)).to(x.device)
            m = self._buf[(self._head + idx) % len(self._buf)]
            t = min(m.shape[-1], x.shape[-1])
            lam = (torch.rand(x.shape[0], 1, 1) * self.cfg.mixup).to(x.device)
            mixed = torch.log((1 - lam) * x[..., :t].exp() + lam * m[..., :t].exp())
            out = torch.cat([mixed, x[..., t:]], dim=-1)
        self._remember(x.detach())
        return out


def db_shift(db: torch.Tensor, std: torch.Tensor | None) -> torch.Tensor:
    """The additive shift of a normalised log-mel (..., n_mels, frames) for a level change of ``db`` decibels
    (shaped to broadcast, e.g. (B, 1, 1)): log(g^2 * power) = log(power) + 2 log(g), over each band's ``std``."""
    shift = 2 * math.log(10) * db / 20
    return shift / std.view(-1, 1).to(db.device) if std is not None else shift


def random_resize_crop(x: torch.Tensor, virtual_scale: tuple[float, float], time_scale: tuple[float, float],
                       freq_scale: tuple[float, float]) -> torch.Tensor:
    """BYOL-A's RandomResizeCrop: crop a random box of a zero-padded canvas, resize it back (bicubic).

    ``virtual_scale`` is the canvas size (frequency, time) relative to the input. The whole batch is
    resampled in one ``grid_sample`` call (the canvas is implicit: outside the input is zero).
    """
    b, f, t = x.shape
    vf, vt = int(f * virtual_scale[0]), int(t * virtual_scale[1])
    f0, t0 = (vf - f) // 2, (vt - t) // 2
    cf = (f * (freq_scale[0] + (freq_scale[1] - freq_scale[0]) * torch.rand(b))).long().clamp(1, vf)
    ct = (t * (time_scale[0] + (time_scale[1] - time_scale[0]) * torch.rand(b))).long().clamp(1, vt)
    i0 = (torch.rand(b) * (vf - cf + 1)).long()
    j0 = (torch.rand(b) * (vt - ct + 1)).long()
    ys = (i0 - f0)[:, None] + torch.arange(f)[None] * ((cf - 1) / max(1, f - 1))[:, None]  # input rows (B, f)
    xs = (j0 - t0)[:, None] + torch.arange(t)[None] * ((ct - 1) / max(1, t - 1))[:, None]  # input cols (B, t)
    grid = torch.stack([(2 * xs / max(1, t - 1) - 1)[:, None, :].expand(b, f, t),
                        (2 * ys / max(1, f - 1) - 1)[:, :, None].expand(b, f, t)], dim=-1)
    out = F.grid_sample(x[:, None].float(), grid.to(x.device, torch.float32), mode="bicubic",
                        padding_mode="zeros", align_corners=True)
    return out[:, 0].to(x.dtype)


def spec_augment(x: torch.Tensor, freq_masks: int, freq_width: int, time_masks: int, time_width: int) -> torch.Tensor:
    """Zero (the normalised mean) ``freq_masks`` bands of up to ``freq_width`` bins and ``time_masks``
    spans of up to ``time_width`` frames per example (SpecAugment, Park et al., 2019)."""
    b, f, t = x.shape
    out = x.clone()
    for _ in range(freq_masks):
        w = torch.randint(0, freq_width + 1, (b,))
        s = (torch.rand(b) * (f - w).clamp_min(1)).long()
        w, s, band = w.to(x.device), s.to(x.device), torch.arange(f, device=x.device)[None]
        out = out.masked_fill(((band >= s[:, None]) & (band < (s + w)[:, None]))[:, :, None], 0.0)
    for _ in range(time_masks):
        w = torch.randint(0, time_width + 1, (b,))
        s = (torch.rand(b) * (t - w).clamp_min(1)).long()
        w, s, span = w.to(x.device), s.to(x.device), torch.arange(t, device=x.device)[None]
        out = out.masked_fill(((span >= s[:, None]) & (span < (s + w)[:, None]))[:, None, :], 0.0)
    return out


def mel_shift(x: torch.Tensor, max_bins: int) -> torch.Tensor:
    """Shift each example along the mel axis by a random whole number of bins, repeating the edge bin."""
    b, f, _ = x.shape
    shifts = torch.randint(-max_bins, max_bins + 1, (b,)).to(x.device)
    idx = (torch.arange(f, device=x.device)[None] - shifts[:, None]).clamp(0, f - 1)
    return torch.gather(x, 1, idx[:, :, None].expand_as(x))
