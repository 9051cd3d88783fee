"""The settings of a training run (``TrainConfig``), its learning-rate schedule and its collapse check."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from ..errors import AudioembError
from ..nn.frontend import LogMelConfig

COLLAPSE_THRESHOLD = 0.05  # collapse_std below this (healthy runs sit near 1) counts as collapsed
# Settings that say how a run is executed, not what it learns: they may change when a run resumes.
RUNTIME_FIELDS = frozenset({"device", "threads", "log_every", "ckpt_every", "check_sync", "channels_last",
                            "stop_at", "keep_every", "time_budget_s", "precision", "keep_heap"})
BUDGET_WARMUP_STEPS = 20  # steps not timed (compilation, caches) before the calibration steps
BUDGET_CALIBRATION_STEPS = 200  # steps timed before ``time_budget_s`` sets ``steps``


PRECISIONS = ("auto", "bf16", "fp32")


_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "dict": dict}
_TYPE_NAMES = {str: "a string", int: "an integer", (int, float): "a number", bool: "true or false",
               dict: "a JSON object"}


class ConfigError(AudioembError, ValueError):
    """A recipe or override that names an unknown setting or a bad value."""


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
    batch_size: int = 64  # per process; under DDP the global batch is batch_size x world size
    crop_s: float = 1.0
    speed: float = 0.0
    pair_clips: bool = False  # batches of pairs from one group (data.CropLoader): hard negatives for neighbours
    domain_weights: dict = field(default_factory=dict)  # {domain: weight}: each domain's share of the crops
    lr: float = 3e-4
    weight_decay: float = 1e-5
    warmup_steps: int = 100
    grad_clip: float = 3.0
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 200
    stats_clips: int = 1000
    threads: int = 2
    precision: str = "auto"  # "bf16": bfloat16 autocast for encoder and heads; "fp32"; "auto": see resolve_precision
    epoch_steps: int = 0  # steps per "epoch" for on_epoch_start hooks; 0: clips // batch_size
    device: str = "auto"  # "auto" (CUDA when available), "cpu" or "cuda"
    channels_last: bool = True  # NHWC convolutions: 1.7x faster for the AudioNTT CNN on this CPU
    keep_heap: bool = True  # keep freed memory in the heap for the next step (train/heap.py): no page faults
    check_sync: int = 0  # under DDP, every this many steps check that all ranks hold identical weights
    stop_at: int = 0  # stop (with a checkpoint) after this step, to resume later; 0: train all ``steps``
    keep_every: int = 0  # also keep checkpoint-<step>.safetensors every this many steps (held-out curves)
    time_budget_s: float = 0  # >0: after the calibration steps, lower ``steps`` so that training ends in this time

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, not {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be auto, bf16 or fp32, not {self.precision!r}")
        w = self.domain_weights
        if not isinstance(w, dict) or any(not isinstance(v, (int, float)) or v < 0 for v in w.values()) \
                or (w and not sum(w.values()) > 0):
            raise ConfigError(f"domain_weights must map domains to weights >= 0, not all 0 (for example "
                              f'{{"speech": 2, "music": 1, "sound": 1}}), not {w!r}')
        for k in ("steps", "batch_size", "threads", "log_every", "ckpt_every"):
            if not isinstance(getattr(self, k), int) or getattr(self, k) < 1:
                raise ConfigError(f"{k} must be a positive integer, not {getattr(self, k)!r}")
        for f in self.__dataclass_fields__.values():  # each setting has its type (a --set value parsed as JSON)
            v, want = getattr(self, f.name), _TYPES[str(f.type)]
            if isinstance(v, bool) != (want is bool) or not isinstance(v, want):
                raise ConfigError(f"{f.name} must be {_TYPE_NAMES[want]}, not {v!r}")
        for k in ("crop_s", "lr"):
            if not getattr(self, k) > 0:
                raise ConfigError(f"{k} must be above 0, not {getattr(self, k)!r}")
        for k in ("speed", "weight_decay", "warmup_steps", "grad_clip", "stop_at", "keep_every", "time_budget_s",
                  "epoch_steps", "check_sync", "stats_clips", "seed"):
            if getattr(self, k) < 0:
                raise ConfigError(f"{k} must not be negative, not {getattr(self, k)!r}")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown training settings: {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def learned(self) -> dict:
        """The settings that decide what is learned (all but :data:`RUNTIME_FIELDS`)."""
        return {k: v for k, v in asdict(self).items() if k not in RUNTIME_FIELDS}


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


def budget_steps(cfg: TrainConfig, step: int, elapsed_s: float, s_per_step: float) -> int:
    """The run's length in steps when ``cfg.time_budget_s`` of training time is to be spent: the steps
    that fit in the time left at the measured ``s_per_step``, never more than ``cfg.steps`` and never
    fewer than the warm-up."""
    left = max(0.0, cfg.time_budget_s - elapsed_s)
    fit = step + int(left / max(1e-9, s_per_step))
    return int(min(cfg.steps, max(fit, cfg.warmup_steps + 1, step + 1)))


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu"; "cuda" without a GPU is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: torch sees no CUDA GPU on this machine")
    return device


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA GPU that supports it, or a CPU with AVX-512 BF16
    or AMX. Elsewhere torch emulates bfloat16, and autocast makes training slower, not faster (an AVX2-only
    EPYC: 13 views/s in bf16 against 160 in fp32, where a CPU with AVX-512 BF16 is 1.5-1.9x faster in bf16)."""
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes: assume emulation
        return False


def resolve_precision(precision: str, device: str) -> str:
    """"auto" -> "bf16" where ``device`` computes bfloat16 natively (:func:`native_bf16`), else "fp32"; an explicit
    "bf16" or "fp32" is kept."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision
