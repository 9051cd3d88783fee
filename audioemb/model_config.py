"""A model folder's ``config.json`` as typed, validated, torch-free dataclasses (in the spirit of timm's
``PretrainedCfg``): read and checked once by :func:`ModelConfig.from_dict`, then read by attribute.

The card, ``audioemb models`` and the results tables render from a :class:`ModelConfig` alone. Records
written before a field existed are migrated here, in one place: the licences of the project corpus v1's
Debian packages (configs that list packages but no licences), and the legacy ``hardware`` line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import AudioembError


class ModelFolderError(AudioembError):
    """A model folder that is missing files, or whose files or config are invalid."""


# Licences of the project corpus v1's Debian packages, for configs written before runs recorded them
# (``training.data.licences``); only the packages a config lists are ever named.
_V1_LICENCES = {
    "fillets-ng-data-cs": "GPL-2", "fillets-ng-data-nl": "GPL-2", "tuxpaint-stamps-default": "GPL-2",
    "klettres-data": "GPL-2+", "ktuberling-data": "GPL-2+", "hedgewars-data": "GFDL-1.3",
    "gcin-voice": "GPL-3 / CC-BY-3", "fluid-soundfont-gm": "MIT-style", "sonic-pi-samples": "MIT",
    **{p: "free licence listed in its debian/copyright" for p in (
        "supertux-data", "freedroidrpg-data", "lincity-ng-data", "colobot-common-sounds", "sound-theme-freedesktop",
        "oxygen-sounds")},
}
_V1_SYNTH = ("espeak-ng", "GPL-3; its voices render the corpus's synthesised speech")


def _need(d: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise ModelFolderError(f"{where}: missing required key {key!r}")
    v = d[key]
    if not isinstance(v, kind) or isinstance(v, bool):
        raise ModelFolderError(f"{where}: {key} = {v!r} is not {getattr(kind, '__name__', kind)}")
    return v


@dataclass
class LogMelConfig:
    """The log-mel frontend inside the graph (``nn/frontend.py`` builds it; defined here, torch-free)."""

    sample_rate: int = 16000
    n_fft: int = 400
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 60.0
    f_max: float = 7800.0
    eps: float = 1e-6

    def to_dict(self) -> dict:
        return {"type": "logmel", **asdict(self)}

    @classmethod
    def from_dict(cls, fe: dict, sample_rate: int | None = None) -> LogMelConfig:
        """From a config's ``frontend`` (``type`` and unknown keys ignored; missing ones take the defaults)."""
        kinds = {f.name: (int if f.type == "int" else float) for f in fields(cls)}
        out = cls(**{k: kinds[k](v) for k, v in fe.items() if k in kinds})
        if "sample_rate" not in fe and sample_rate is not None:
            out.sample_rate = int(sample_rate)
        return out


@dataclass(frozen=True)
class InferenceConfig:
    """How long inputs are windowed and pooled (``runtime.py``)."""

    window_s: float
    min_s: float
    pooling: str = ""


def _subset_text(sub: dict | None) -> str | None:
    if not sub:
        return None
    return (f"a random {float(sub['fraction']):.0%} of the corpus's training clips (seed {sub.get('seed', 0)}, the "
            f"same fraction of every source), coded as {sub.get('codec', '?')}: {sub.get('why', '')}").rstrip(": ")


@dataclass(frozen=True)
class DataRecord:
    """What a model was trained on, as its run recorded it (``training.data``).

    ``kind``: ``"corpus"``, ``"folders"`` or None (configs from before the field). ``licences``: (package,
    licence) pairs the data carries; ``unlicensed``: packages whose licence was not recorded.
    """

    kind: str | None = None
    corpus: str | None = None
    data_tag: str | None = None
    recipe_version: Any = None
    folders: tuple[str, ...] = ()
    files: Any = None
    clips: Any = None
    hours: Any = None
    skipped: int = 0
    manifest_sha256: str | None = None
    file_list_sha256: str | None = None
    licences: tuple[tuple[str, str], ...] = ()
    unlicensed: tuple[str, ...] = ()
    subset: str | None = None  # how a subset of the corpus was drawn (and coded), when the run used one

    @classmethod
    def from_dict(cls, d: dict) -> DataRecord:
        lic = d.get("licences") or []
        pairs = [(x["package"], x["licence"]) if isinstance(x, dict) else (str(x), "") for x in lic]
        unlicensed: list[str] = []
        if not lic and d.get("kind") != "folders":  # v1 configs: packages listed, licences not recorded
            pkgs = list(d.get("packages", {}))
            pairs = [(p, _V1_LICENCES[p]) for p in pkgs if p in _V1_LICENCES]
            if pairs and d.get("recipe_version") == 1:
                pairs.append(_V1_SYNTH)
            unlicensed = [p for p in pkgs if p not in _V1_LICENCES]
        return cls(kind=d.get("kind"), corpus=d.get("corpus"), data_tag=d.get("data_tag"),
                   recipe_version=d.get("recipe_version"), folders=tuple(d.get("folders", ())),
                   files=d.get("files"), clips=d.get("clips", d.get("train_clips")),
                   hours=d.get("hours", d.get("train_hours")), skipped=int(d.get("skipped") or 0),
                   manifest_sha256=d.get("manifest_sha256"), file_list_sha256=d.get("file_list_sha256"),
                   licences=tuple(pairs), unlicensed=tuple(unlicensed), subset=_subset_text(d.get("subset")))


@dataclass(frozen=True)
class EnvRecord:
    """Where a run trained (``training.env``); ``legacy`` holds the free-text ``hardware`` line of older runs."""

    device: str | None = None
    device_name: str | None = None
    machine: str | None = None
    world_size: int = 1
    threads_per_process: int | None = None
    precision: str | None = None
    legacy: str | None = None

    @property
    def recorded(self) -> bool:
        return self.device is not None


@dataclass(frozen=True)
class TrainingRecord:
    """A model's training provenance (``training``); ``parts`` is set for models concatenated from others."""

    command: str | None = None
    steps: int | None = None
    batch_size: int | None = None
    crop_s: float | None = None
    wall_time_s: float = 0.0
    wall_time_note: str | None = None  # what the wall time included (shared cores, pauses)
    tried: tuple[str, ...] = ()  # what was tried to make a model that does not learn learn
    after_training: tuple[str, ...] = ()  # changes to the folder made later without training (another readout)
    torch: str | None = None
    audioemb: str | None = None
    git_commit: str | None = None
    date: str | None = None
    final_collapse_std_heldout: float | None = None
    collapse_clips: str | None = None  # what the collapse figure was measured on (None: held-out corpus clips)
    env: EnvRecord = field(default_factory=EnvRecord)
    data: DataRecord = field(default_factory=DataRecord)
    init: dict | None = None
    parts: dict | None = None
    loss_curve: tuple[dict, ...] = ()
    heldout_curve: tuple[dict, ...] = ()  # held-out domain means of kept checkpoints (train/heldout.py)

    @property
    def global_batch(self) -> int | None:
        """Clips per optimiser step: ``batch_size`` is per process, times the recorded world size (DDP)."""
        return None if self.batch_size is None else self.batch_size * self.env.world_size

    @classmethod
    def from_dict(cls, t: dict) -> TrainingRecord:
        env = t.get("env") or {}
        return cls(command=t.get("command"), steps=t.get("steps"), batch_size=t.get("batch_size"),
                   crop_s=t.get("crop_s"), wall_time_s=float(t.get("wall_time_s") or 0),
                   wall_time_note=t.get("wall_time_note"), tried=tuple(t.get("tried") or ()),
                   after_training=tuple(t.get("after_training") or ()),
                   torch=t.get("torch"), audioemb=t.get("audioemb"), git_commit=t.get("git_commit"), date=t.get("date"),
                   final_collapse_std_heldout=t.get("final_collapse_std_heldout"),
                   collapse_clips=t.get("collapse_clips"),
                   env=EnvRecord(env.get("device"), env.get("device_name"), env.get("machine"),
                                 int(env.get("world_size") or 1), env.get("threads_per_process"),
                                 env.get("precision"), t.get("hardware")),
                   data=DataRecord.from_dict(t.get("data") or {}), init=t.get("init") or None,
                   parts=t.get("parts"), loss_curve=tuple(t.get("loss_curve") or ()),
                   heldout_curve=tuple(t.get("heldout_curve") or ()))


@dataclass(frozen=True)
class Metrics:
    """Held-out figures (``metrics``): corpus tasks and ``results`` {model or baseline: {task: {metric: value}}},
    the reason there are none (``no_corpus``), the user's ``--eval`` data (``user_eval``), and ``other_tasks``:
    figures on tasks outside the suite (a later corpus version's own tasks), ``{"corpus": ..., "tasks": ...,
    "results": ...}``, kept apart so that they never enter the suite's means or the default-model rule."""

    heldout_tasks: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    corpus: str | None = None
    no_corpus: str | None = None
    user_eval: dict | None = None
    other_tasks: dict = field(default_factory=dict)

    def of(self, name: str) -> dict:
        """{task: {metric: value}} of one row (empty when absent)."""
        return self.results.get(name, {})


@dataclass(frozen=True)
class ModelConfig:
    """A validated ``config.json``. ``raw`` is the JSON itself (for writers, and for the weight-hash checks)."""

    name: str
    sample_rate: int
    embedding_dim: int
    frame_dim: int
    frame_hop: int
    frame_rate_hz: float
    n_layers: int
    parameters: int
    frontend: LogMelConfig
    encoder: dict
    inference: InferenceConfig
    objective: dict
    files: dict
    training: TrainingRecord
    metrics: Metrics
    onnx: dict
    quantization: dict | None
    raw: dict = field(repr=False, compare=False)

    @property
    def trained_parameters(self) -> int:
        """Encoder parameters trained; more than :attr:`parameters` when a readout leaves some unrun."""
        return int(self.raw.get("stored_parameters") or self.parameters)

    @property
    def objective_name(self) -> str | None:
        return self.objective.get("name")

    @property
    def embedding_norm(self) -> dict | None:
        """How the clip embedding is standardised inside the model (``audioemb export --standardize``), if it is."""
        return self.raw.get("embedding_norm") or None

    @property
    def encoder_type(self) -> str:
        return self.encoder["type"]

    @classmethod
    def from_dict(cls, cfg: dict, where: str = "config.json") -> ModelConfig:
        """Check types and ranges once; raise :class:`ModelFolderError` naming ``where`` and the field."""
        if not isinstance(cfg, dict):
            raise ModelFolderError(f"{where}: not a JSON object")
        name = _need(cfg, "name", str, where)
        sr = _need(cfg, "sample_rate", int, where)
        dim = _need(cfg, "embedding_dim", int, where)
        fe = _need(cfg, "frontend", dict, where)
        enc = _need(cfg, "encoder", dict, where)
        files = _need(cfg, "files", dict, where)
        _need(enc, "type", str, f"{where}: encoder")
        inf = cfg.get("inference") or {"window_s": 10.0, "min_s": 0.25}
        window, min_s = float(_need(inf, "window_s", (int, float), f"{where}: inference")), float(inf.get("min_s", 0))
        if sr <= 0 or dim <= 0 or window <= 0 or not 0 <= min_s <= window:
            raise ModelFolderError(f"{where}: sample_rate, embedding_dim and inference.window_s must be positive and "
                                   f"0 <= min_s <= window_s (got {sr}, {dim}, {window}, {min_s})")
        if fe.get("type", "logmel") != "logmel":
            raise ModelFolderError(f"{where}: unknown frontend type {fe.get('type')!r}")
        frontend = LogMelConfig.from_dict(fe, sr)
        hop = frontend.hop_length
        if frontend.sample_rate != sr:
            raise ModelFolderError(f"{where}: frontend.sample_rate {frontend.sample_rate} != sample_rate {sr}")
        m = cfg.get("metrics") or {}
        return cls(name=name, sample_rate=sr, embedding_dim=dim, frame_dim=int(cfg.get("frame_dim", dim)),
                   frame_hop=int(cfg.get("frame_hop", 1)),
                   frame_rate_hz=float(cfg.get("frame_rate_hz") or sr / (hop * int(cfg.get("frame_hop", 1)))),
                   n_layers=int(cfg.get("n_layers", 1)), parameters=int(cfg.get("parameters") or 0),
                   frontend=frontend, encoder=enc,
                   inference=InferenceConfig(window, min_s, str(inf.get("pooling", ""))),
                   objective=cfg.get("objective") or {}, files=files,
                   training=TrainingRecord.from_dict(cfg.get("training") or {}),
                   metrics=Metrics(m.get("heldout_tasks") or {}, m.get("results") or {}, m.get("corpus"),
                                   m.get("no_corpus"), m.get("user_eval"), m.get("other_tasks") or {}),
                   onnx=cfg.get("onnx") or {}, quantization=cfg.get("quantization"), raw=cfg)
