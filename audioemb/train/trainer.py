"""The one plain-PyTorch trainer for every objective: devices, DDP, schedules, EMA hooks, logging, resume.

One process (``audioemb train``) or several (``torchrun --nproc_per_node N -m audioemb.train``): under
DDP each rank draws from its own shard of the clips, gradients are averaged by
:class:`torch.nn.parallel.DistributedDataParallel` (gloo on the CPU, NCCL on CUDA), rank 0 writes the
checkpoints, and every rank resumes from them exactly.
"""

from __future__ import annotations

import json
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from ..fsio import atomic_write, atomic_write_json
from ..nn import distributed as dist
from ..nn.encoders import build_encoder
from ..objectives import build_frontend, build_objective
from ..objectives.base import Batch, TrainerView
from .checkpoint import load_checkpoint, save_checkpoint
from .config import (
    BUDGET_CALIBRATION_STEPS,
    BUDGET_WARMUP_STEPS,
    COLLAPSE_THRESHOLD,
    ConfigError,
    TrainConfig,
    budget_steps,
    collapse_std,
    lr_at,
    native_bf16,
    resolve_device,
    resolve_precision,
)
from .data import CropLoader
from .heap import keep_freed_memory
from .runinfo import apply_init, check_resume, env_info, open_data
from .stopping import StopRequest, TrainingInterrupted
from .validate import check_builds

__all__ = ["COLLAPSE_THRESHOLD", "TrainConfig", "Trainer", "collapse_std", "lr_at"]


class Trainer:
    """Trains ``cfg.objective`` on a corpus or on folders of audio; the run folder holds everything.

    ``data`` (folders of any audio) replaces ``corpus``; ``init`` (a model name, folder or ``hf-hub:``)
    starts from that model's frontend and encoder, re-estimating the frontend's normalisation on the new
    data when ``renormalise``. ``progress`` receives each log record (rank 0 only).
    """

    def __init__(self, cfg: TrainConfig, corpus: Path | None, run_dir: Path, log=print, *,
                 data: list[Path] | None = None, init: str | None = None, renormalise: bool = False,
                 cache: Path | None = None, progress: Callable[[dict], None] | None = None):
        self.device = resolve_device(cfg.device)
        dist.init_from_env(self.device)
        self.rank, self.world = dist.rank(), dist.world_size()
        self.is_main = self.rank == 0
        self.log = log if self.is_main else (lambda *a, **k: None)
        self.progress = progress if self.is_main else None
        if cfg.precision == "bf16" and not native_bf16(self.device):  # "auto" never picks bf16 there
            self.log(f"warning: {self.device} has no native bfloat16, so bf16 autocast is emulated and training is "
                     "several times slower than in fp32 (--set precision=auto picks fp32 here)")
        cfg = replace(cfg, precision=resolve_precision(cfg.precision, self.device))
        self.run_dir = Path(run_dir)
        torch.set_num_threads(cfg.threads)
        self.heap_kept = keep_freed_memory() if cfg.keep_heap else False
        init_module, init_info = None, None
        if init:
            cfg, init_module, init_info = apply_init(cfg, init)
            init_info["renormalised"] = bool(renormalise)
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        saved = self.run_dir / "config.json"
        self.ckpt = self.run_dir / "checkpoint.safetensors"
        resuming = saved.exists() and self.ckpt.exists()
        if resuming:
            old = TrainConfig.from_dict(json.loads(saved.read_text()))
            given = cfg.name  # the name is not learned: a resumed run keeps the one it started with
            cfg = self.cfg = replace(cfg, name=old.name)
            if cfg.time_budget_s and {**old.learned(), "steps": cfg.steps} == cfg.learned():
                cfg = self.cfg = replace(cfg, steps=old.steps)  # the budget already set this run's length
            if old.learned() != cfg.learned():
                diff = sorted(k for k, v in cfg.learned().items() if old.learned().get(k) != v)
                raise ConfigError(f"{self.run_dir} holds a run with other settings ({', '.join(diff)}); "
                                  "use a new folder")
            if given != old.name:  # said once the resume is known to go ahead
                self.log(f"resuming {old.name} (the run's name; {given} now)")
        check_builds(cfg)  # a bad setting is one line now, not a traceback after the audio is decoded
        if cfg.warmup_steps >= cfg.steps and not cfg.time_budget_s:
            self.log(f"note: warmup_steps ({cfg.warmup_steps}) is not shorter than the run ({cfg.steps} steps): the "
                     "learning rate never reaches lr")
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        sr = int(cfg.frontend.get("sample_rate", 16000))
        if self.is_main:  # rank 0 builds any decoded-audio cache; the others open it
            self.pack, self.data_info = open_data(corpus, data, self.run_dir, sr, cache, log=self.log)
        dist.barrier()
        if not self.is_main:
            self.pack, self.data_info = open_data(corpus, data, self.run_dir, sr, cache, log=self.log)
        if resuming:
            check_resume(self.run_dir, self.data_info, init_info)
        if len(self.pack) < cfg.batch_size * self.world:
            self.log(f"note: {len(self.pack)} training clips for batches of {cfg.batch_size * self.world}: each batch "
                     "repeats clips, so a contrastive objective meets a clip as its own negative; use more audio or "
                     "--set batch_size=N")
        self.frontend = build_frontend(cfg.frontend)
        if init_module is not None and not renormalise:
            self.frontend.load_state_dict(init_module.frontend.state_dict())
        else:
            self._fit_stats()
        if init_module is not None and not resuming:
            self.log(f"starting from {init} ({init_info['name']}): its encoder weights, its frontend statistics "
                     + ("re-estimated on this data" if renormalise else "kept"))
        self.encoder = build_encoder(cfg.encoder)
        if init_module is not None:
            self.encoder.load_state_dict(init_module.encoder.state_dict())
        self.objective = build_objective(cfg, len(self.pack), self.frontend, self.encoder)
        self.views = self.objective.views
        if cfg.channels_last:
            self.objective.to(memory_format=torch.channels_last)
        self.objective.to(self.device)
        self.views.std = self.frontend.std  # the buffer moved with the module
        params = [p for p in self.objective.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step, self.wall_s = 0, 0.0
        if self.is_main:
            atomic_write_json(saved, asdict(cfg), indent=1)
            self._write_json("data.json", self.data_info)
            self._write_json("env.json", env_info(self.device, self.world, cfg, self.heap_kept))
            if init_info is not None:
                self._write_json("init.json", init_info)
        dist.barrier()
        if self.ckpt.exists():
            info = load_checkpoint(self.ckpt, self.objective, self.optimizer)
            self.step, self.wall_s = info["step"], info["wall_s"]
            memory = info["extra"].get(f"views.memory.{self.rank}")
            if memory is not None and info.get("world_size", 1) == self.world:  # exact resume of the mixup
                self.views.memory = memory.to(self.device) if memory.numel() else None
            self.log(f"resumed {self.run_dir} at step {self.step}")
        dist.broadcast_module_(self.objective)
        self.model = self._wrap()

    def _wrap(self) -> torch.nn.Module:
        if self.world == 1:
            return self.objective
        if not getattr(self.objective, "supports_ddp", True):
            raise ConfigError(f"objective {self.cfg.objective!r} does not support several processes (DDP)")
        import warnings

        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [torch.cuda.current_device()] if self.device == "cuda" else None
        unused = getattr(self.objective, "ddp_unused_parameters", False)
        # BN statistics stay per rank (rank 0's are saved); queues and banks are kept in sync by the objectives
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return DDP(self.objective, device_ids=ids, find_unused_parameters=unused, broadcast_buffers=False)

    def _write_json(self, name: str, obj: dict) -> None:
        atomic_write_json(self.run_dir / name, obj, indent=1)

    @torch.no_grad()
    def _fit_stats(self) -> None:
        rng = np.random.default_rng(self.cfg.seed)
        idx = rng.choice(len(self.pack), size=min(self.cfg.stats_clips, len(self.pack)), replace=False)
        cap = 10 * self.pack.sample_rate
        waves = [torch.from_numpy(self.pack.clip(int(i))[:cap].copy()) for i in np.sort(idx)]
        waves = [w for w in waves if len(w) > self.frontend.min_samples]
        self.frontend.fit_stats(waves)

    def epoch_steps(self) -> int:
        return self.cfg.epoch_steps or max(1, len(self.pack) // (self.cfg.batch_size * self.world))

    def _autocast(self):
        return torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    def fit(self) -> dict:
        cfg, obj = self.cfg, self.objective
        loader = CropLoader(self.pack, cfg.batch_size, cfg.crop_s, obj.n_crops, cfg.speed, cfg.seed, self.step,
                            rank=self.rank, world=self.world, pair=cfg.pair_clips, weights=cfg.domain_weights or None)
        log_f = open(self.run_dir / "log.jsonl", "a") if self.is_main else None
        sync_f = open(self.run_dir / f"sync-rank{self.rank}.jsonl", "a") if cfg.check_sync else None
        window: list[float] = []
        collapsed_logs = 0
        recent: deque[float] = deque(maxlen=50)  # recent step times, to spot pauses
        t_last = time.time()
        t_window, views_window = time.time(), 0
        end = min(cfg.steps, cfg.stop_at) if cfg.stop_at else cfg.steps
        # time_budget_s: time the steps [calib_from, calib_to) of this invocation, then set the run's length
        calib_from = self.step + BUDGET_WARMUP_STEPS
        calib_to = calib_from + BUDGET_CALIBRATION_STEPS
        t_fit = t_calib = time.time()
        stop = StopRequest()
        try:
            stop.install()
            while self.step < end:
                if cfg.time_budget_s and self.step == calib_from:
                    t_calib = time.time()
                if cfg.time_budget_s and self.step == calib_to:  # budget_steps keeps at least one more step
                    cfg = self._apply_budget(time.time() - t_fit, (time.time() - t_calib) / BUDGET_CALIBRATION_STEPS)
                    end = min(cfg.steps, cfg.stop_at) if cfg.stop_at else cfg.steps
                step, clips, batch = next(loader)
                assert step == self.step
                hook_s = 0.0
                step_seed = cfg.seed * 1_000_003 + step + (7919 * self.rank if self.world > 1 else 0)
                if step % self.epoch_steps() == 0:
                    t_hook = time.time()
                    torch.manual_seed(step_seed)  # a resumed run re-initialises heads exactly as a straight one
                    obj.on_epoch_start(step // self.epoch_steps(), self.view())
                    hook_s = time.time() - t_hook
                obj.train()
                torch.manual_seed(step_seed)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr_at(step, cfg)
                wav = torch.from_numpy(batch).to(self.device, non_blocking=True)
                with self._autocast():
                    out = self.model(Batch(wav, step, np.asarray(clips, dtype=np.int64)))
                loss = out["loss"].float()
                self._check_finite(loss, step)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(
                        [p for g in self.optimizer.param_groups for p in g["params"]], cfg.grad_clip)
                self.optimizer.step()
                obj.on_after_step(step, (step + 1) / cfg.steps)
                window.append(loss.item())
                views_window += cfg.batch_size * obj.n_crops * self.world
                self.step += 1
                if sync_f is not None and self.step % cfg.check_sync == 0:
                    self._check_sync(sync_f)
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
                    vps = views_window / max(1e-9, now - t_window)
                    t_window, views_window = now, 0
                    collapsed_logs = self._log_record(out, window, step, vps, collapsed_logs, log_f)
                    window = []
                if self.step % cfg.ckpt_every == 0 or self.step in (cfg.steps, end):
                    self.save()
                if cfg.keep_every and self.step % cfg.keep_every == 0 and self.is_main:
                    self._keep_copy()
                if sig := stop.requested(self.world, self.device):
                    self.save()
                    raise TrainingInterrupted(f"stopped by {signal.Signals(sig).name} at step {self.step} of "
                                              f"{cfg.steps}, checkpoint saved in {self.run_dir}: run the same "
                                              "command again to resume", sig)
        finally:
            stop.restore()
            loader.close()
            for f in (log_f, sync_f):
                if f is not None:
                    f.close()
        dist.barrier()  # under DDP every rank finishes before any tears the process group down
        return {"steps": self.step, "wall_s": self.wall_s}

    def _apply_budget(self, elapsed_s: float, s_per_step: float) -> TrainConfig:
        """Set ``steps`` from the measured speed so that training ends within ``time_budget_s``; rank 0
        decides, every rank follows, and ``config.json`` records the length actually trained."""
        steps = budget_steps(self.cfg, self.step, elapsed_s, s_per_step)
        if self.world > 1:
            t = torch.tensor([steps], dtype=torch.int64, device=self.device)
            torch.distributed.broadcast(t, 0)
            steps = int(t.item())
        if steps != self.cfg.steps:
            spent = " (spent before the timing steps ended: the run ends now)" if elapsed_s > self.cfg.time_budget_s \
                else ""
            self.log(f"time budget {self.cfg.time_budget_s:.0f} s at {s_per_step * 1000:.1f} ms/step: "
                     f"{steps} steps instead of {self.cfg.steps}{spent}")
            self.cfg = replace(self.cfg, steps=steps)
            if self.is_main:
                atomic_write_json(self.run_dir / "config.json", asdict(self.cfg), indent=1)
        return self.cfg

    def view(self) -> TrainerView:
        """What the objectives' epoch hooks see of this trainer (see :class:`TrainerView`)."""

        def forget(params) -> None:
            for p in params:
                self.optimizer.state.pop(p, None)

        return TrainerView(len(self.pack), self.embed_clips, forget)

    def _check_finite(self, loss: torch.Tensor, step: int) -> None:
        bad = torch.tensor([0.0 if torch.isfinite(loss) else 1.0], device=loss.device)
        if self.world > 1:
            torch.distributed.all_reduce(bad)
        if bad.item():
            raise FloatingPointError(f"loss is not finite at step {step} (on {int(bad.item())} rank(s))")

    def _log_record(self, out: dict, window: list[float], step: int, vps: float, collapsed_logs: int,
                    log_f) -> int:
        cfg = self.cfg
        loss = torch.tensor([float(np.mean(window))], dtype=torch.float64, device=self.device)
        if self.world > 1:  # the loss of the global batch: every rank takes part
            torch.distributed.all_reduce(loss)
            loss /= self.world
        if not self.is_main:
            return collapsed_logs
        cstd = collapse_std(out["embeddings"])
        collapsed_logs = collapsed_logs + 1 if cstd < COLLAPSE_THRESHOLD else 0
        rec = {"step": self.step, "loss": float(loss.item()), "lr": lr_at(step, cfg), "collapse_std": round(cstd, 4),
               "wall_s": round(self.wall_s, 1), "views_per_s": round(vps, 1)}
        rec.update({k: round(float(v), 5) for k, v in out.items()
                    if k not in ("loss", "embeddings") and torch.is_tensor(v) and v.numel() == 1})
        log_f.write(json.dumps(rec) + "\n")
        log_f.flush()
        if self.progress is not None:
            self.progress({**rec, "steps": cfg.steps})
        else:
            self.log(f"step {self.step}/{cfg.steps} loss {rec['loss']:.4f} collapse_std {cstd:.3f} "
                     f"lr {rec['lr']:.2e} {vps:.0f} views/s {self.wall_s / 60:.1f} min")
        if collapsed_logs >= 4:
            self.log("WARNING: the embeddings have collapsed (collapse_std "
                     f"< {COLLAPSE_THRESHOLD} for 4 logs); this run must not be shipped")
        return collapsed_logs

    @torch.no_grad()
    def _check_sync(self, f) -> None:
        """Record a checksum of every parameter; under DDP, fail unless all ranks hold the same weights."""
        sums = torch.stack([p.detach().double().sum() for p in self.objective.parameters()]).cpu()
        rec = {"step": self.step, "rank": self.rank, "checksum": [float(x) for x in sums]}
        if self.world > 1:
            parts = [torch.empty_like(sums) for _ in range(self.world)]
            torch.distributed.all_gather(parts, sums)
            rec["max_rank_diff"] = float(max((p - sums).abs().max() for p in parts))
            if rec["max_rank_diff"] != 0.0:
                raise RuntimeError(f"ranks hold different weights after step {self.step}")
        f.write(json.dumps(rec) + "\n")
        f.flush()

    def save(self) -> None:
        memories = self._gather_view_memories()
        if self.is_main:
            save_checkpoint(self.ckpt, self.objective, self.optimizer,
                            {"step": self.step, "wall_s": self.wall_s, "n_clips": len(self.pack),
                             "world_size": self.world, "device": self.device, "config": asdict(self.cfg)},
                            extra={f"views.memory.{r}": m for r, m in enumerate(memories)})
        dist.barrier()

    def _keep_copy(self) -> None:
        """A copy of the weights at this step (no optimizer state), for held-out figures along the run."""
        from safetensors.torch import save

        keep = self.run_dir / "kept" / f"checkpoint-{self.step:07d}.safetensors"
        keep.parent.mkdir(exist_ok=True)
        tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in self.objective.state_dict().items()}
        atomic_write(keep, save(tensors, metadata={"step": str(self.step)}))

    def _gather_view_memories(self) -> list[torch.Tensor]:
        """Every rank's mixup memory (BYOL-A's background clips), so that rank 0's checkpoint resumes them all."""
        mem = self.views.memory if self.views.memory is not None else torch.zeros(0, device=self.device)
        if self.world == 1:
            return [mem]
        shape = torch.tensor(list(mem.shape) + [0] * (3 - mem.dim()), device=self.device)
        shapes = dist.all_gather_cat(shape[None])
        if not bool((shapes == shapes[0]).all()):
            self.log("note: ranks' mixup memories differ in size; they are not saved (resume refills them)")
            return []
        return list(dist.all_gather_cat(mem[None]))

    @torch.no_grad()
    def embed_clips(self, indices: np.ndarray, encoder=None, crop_s: float | None = None,
                    batch_size: int = 256) -> torch.Tensor:
        """Clip embeddings (by the online encoder, in eval mode) of pack clips: one fixed centre crop each.

        Used by clustering objectives to re-cluster the training set. Returned on the CPU.
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
            x = self.frontend(torch.from_numpy(wav).to(self.device))
            with self._autocast():
                out.append(enc.pool(enc(x)).float().cpu())
        enc.train(was_training)
        return torch.cat(out)

