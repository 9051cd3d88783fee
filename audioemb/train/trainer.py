"""The one plain-PyTorch trainer for every objective: schedules, EMA hooks, logging, checkpoints, resume."""

from __future__ import annotations

import json
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..nn.encoders import build_encoder
from ..nn.frontend import LogMel, LogMelConfig
from ..objectives import get_objective
from .checkpoint import load_checkpoint, save_checkpoint
from .data import CropLoader, Pack, load_pack
from .views import Views

COLLAPSE_THRESHOLD = 0.05  # collapse_std below this (healthy runs sit near 1) counts as collapsed


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as ``config.json`` in the run folder."""

    name: str
    objective: str
    objective_params: dict = field(default_factory=dict)
    encoder: dict = field(default_factory=lambda: {"type": "audiontt"})
    frontend: dict = field(default_factory=lambda: LogMelConfig().to_dict())
    views: dict = field(default_factory=dict)
    steps: int = 3000
    batch_size: int = 64
    crop_s: float = 1.0
    speed: float = 0.0
    lr: float = 3e-4
    weight_decay: float = 1e-5
    warmup_steps: int = 100
    grad_clip: float = 3.0
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 200
    stats_clips: int = 1000
    threads: int = 2
    precision: str = "bf16"  # "bf16": bfloat16 autocast for encoder and heads (2x faster here); "fp32"
    epoch_steps: int = 0  # steps per "epoch" for on_epoch_start hooks; 0: clips // batch_size

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training settings: {sorted(unknown)}")
        return cls(**d)


def collapse_std(emb: torch.Tensor) -> float:
    """Std across the batch of L2-normalised embeddings, mean over dims, times sqrt(dim).

    About 1 for embeddings spread over the sphere, 0 for a collapsed (constant) output (SimSiam, sec. 4).
    """
    z = torch.nn.functional.normalize(emb.float(), dim=-1)
    return float(z.std(dim=0).mean() * math.sqrt(z.shape[-1]))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 1 % of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


class Trainer:
    """Trains ``cfg.objective`` on a corpus; the run folder holds config, log and checkpoint."""

    def __init__(self, cfg: TrainConfig, corpus: Path, run_dir: Path, log=print):
        self.cfg, self.corpus, self.run_dir, self.log = cfg, Path(corpus), Path(run_dir), log
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.pack: Pack = load_pack(self.corpus, "train", log=log)
        self.frontend = LogMel(LogMelConfig(**{k: v for k, v in cfg.frontend.items() if k != "type"}))
        self._fit_stats()
        self.encoder = build_encoder(cfg.encoder)
        self.views = Views(cfg.views, std=self.frontend.std)
        self.objective = get_objective(cfg.objective)(self.encoder, self.frontend, self.views,
                                                      **cfg.objective_params)
        self.objective.setup(len(self.pack))
        params = [p for p in self.objective.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.ckpt = self.run_dir / "checkpoint.safetensors"
        self.step, self.wall_s = 0, 0.0
        saved = self.run_dir / "config.json"
        if saved.exists() and self.ckpt.exists() and json.loads(saved.read_text()) != asdict(cfg):
            raise ValueError(f"{self.run_dir} holds a run with other settings; use a new folder")
        saved.write_text(json.dumps(asdict(cfg), indent=1))
        if self.ckpt.exists():
            info = load_checkpoint(self.ckpt, self.objective, self.optimizer)
            self.step, self.wall_s = info["step"], info["wall_s"]
            log(f"resumed {self.run_dir} at step {self.step}")

    @torch.no_grad()
    def _fit_stats(self) -> None:
        rng = np.random.default_rng(self.cfg.seed)
        idx = rng.choice(len(self.pack), size=min(self.cfg.stats_clips, len(self.pack)), replace=False)
        cap = 10 * self.pack.sample_rate
        waves = [torch.from_numpy(self.pack.clip(int(i))[:cap].copy()) for i in np.sort(idx)]
        waves = [w for w in waves if len(w) > self.frontend.min_samples]
        self.frontend.fit_stats(waves)

    def epoch_steps(self) -> int:
        return self.cfg.epoch_steps or max(1, len(self.pack) // self.cfg.batch_size)

    def fit(self) -> dict:
        cfg, obj = self.cfg, self.objective
        loader = CropLoader(self.pack, cfg.batch_size, cfg.crop_s, obj.n_crops, cfg.speed, cfg.seed, self.step)
        log_f = open(self.run_dir / "log.jsonl", "a")
        window: list[float] = []
        collapsed_logs = 0
        recent: deque[float] = deque(maxlen=50)  # recent step times, to spot pauses
        t_last = time.time()
        try:
            while self.step < cfg.steps:
                step, clips, batch = next(loader)
                assert step == self.step
                hook_s = 0.0
                if step % self.epoch_steps() == 0:
                    t_hook = time.time()
                    obj.on_epoch_start(step // self.epoch_steps(), self)
                    hook_s = time.time() - t_hook
                obj.train()
                torch.manual_seed(cfg.seed * 1_000_003 + step)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr_at(step, cfg)
                extra = {"clips": clips} if getattr(obj, "wants_clip_ids", False) else {}
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                    out = obj.training_step(torch.from_numpy(batch), step, **extra)
                loss = out["loss"].float()
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss.item()} at step {step}")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(
                        [p for g in self.optimizer.param_groups for p in g["params"]], cfg.grad_clip)
                self.optimizer.step()
                obj.on_after_step(step, (step + 1) / cfg.steps)
                window.append(loss.item())
                self.step += 1
                now = time.time()
                dt_step = now - t_last - hook_s
                t_last = now
                self.wall_s += hook_s  # re-clustering counts in full
                recent.append(dt_step)
                # a step far slower than the recent median is the process being paused (SIGSTOP) or the
                # machine suspended: count the median instead, so wall_s stays the training's own time
                med = float(np.median(recent))
                self.wall_s += dt_step if dt_step <= 10 * med or len(recent) < 10 else med
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    cstd = collapse_std(out["embeddings"])
                    collapsed_logs = collapsed_logs + 1 if cstd < COLLAPSE_THRESHOLD else 0
                    rec = {"step": self.step, "loss": float(np.mean(window)), "lr": lr_at(step, cfg),
                           "collapse_std": round(cstd, 4), "wall_s": round(self.wall_s, 1)}
                    rec.update({k: round(float(v), 5) for k, v in out.items()
                                if k not in ("loss", "embeddings") and torch.is_tensor(v) and v.numel() == 1})
                    log_f.write(json.dumps(rec) + "\n")
                    log_f.flush()
                    self.log(f"step {self.step}/{cfg.steps} loss {rec['loss']:.4f} collapse_std {cstd:.3f} "
                             f"lr {rec['lr']:.2e} {self.wall_s / 60:.1f} min")
                    if collapsed_logs >= 4:
                        self.log("WARNING: the embeddings have collapsed (collapse_std "
                                 f"< {COLLAPSE_THRESHOLD} for 4 logs); this run must not be shipped")
                    window = []
                if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                    self.save()
        finally:
            loader.close()
            log_f.close()
        return {"steps": self.step, "wall_s": self.wall_s}

    def save(self) -> None:
        save_checkpoint(self.ckpt, self.objective, self.optimizer,
                        {"step": self.step, "wall_s": self.wall_s, "n_clips": len(self.pack),
                         "config": asdict(self.cfg)})

    @torch.no_grad()
    def embed_clips(self, indices: np.ndarray, encoder=None, crop_s: float | None = None,
                    batch_size: int = 256) -> torch.Tensor:
        """Clip embeddings (by the online encoder, in eval mode) of pack clips: one fixed centre crop each.

        Used by clustering objectives to re-cluster the training set.
        """
        enc = encoder or self.encoder
        was_training = enc.training
        enc.eval()
        n = int(round((crop_s or self.cfg.crop_s) * self.pack.sample_rate))
        out = []
        for s in range(0, len(indices), batch_size):
            wav = np.zeros((len(indices[s:s + batch_size]), n), dtype=np.float32)
            for j, i in enumerate(indices[s:s + batch_size]):
                x = self.pack.clip(int(i))
                a = max(0, (len(x) - n) // 2)
                seg = x[a:a + n]
                wav[j, :len(seg)] = seg
            x = self.frontend(torch.from_numpy(wav))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
                out.append(enc.pool(enc(x)).float())
        enc.train(was_training)
        return torch.cat(out)
