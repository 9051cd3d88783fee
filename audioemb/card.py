"""The model card (README.md) of a model folder, rendered from its :class:`~audioemb.model_config.ModelConfig`
alone.

Everything the card states comes from the config: the sample rate, where the model was trained (device and
machine), on what (corpus or the user's folders: names, file count, hours, file-list sha256), from which
starting model, and the licences the training data carries. Nothing about the data or the machine is assumed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from .eval.tables import evaluation_section
from .fsio import atomic_write
from .model_config import DataRecord, EnvRecord, ModelConfig, TrainingRecord
from .registry import command_ref


def write_card(folder: Path, curve: list[dict] | None = None) -> None:
    """Write ``folder/README.md`` (and ``loss.png`` when there is a loss curve and matplotlib is installed)."""
    cfg = ModelConfig.from_dict(json.loads((folder / "config.json").read_text()), str(folder / "config.json"))
    curve = curve or list(cfg.training.loss_curve)
    if curve and importlib.util.find_spec("matplotlib") is not None:  # the plain install keeps any loss.png there
        _plot(folder / "loss.png", curve, cfg.name)
    atomic_write(folder / "README.md", render_card(cfg, curve))


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _stored_text(cfg: ModelConfig) -> str:
    stored = cfg.trained_parameters
    return f" used by its readout, of {stored:,} stored (trained, not run)" if stored != cfg.parameters else ""


def render_card(cfg: ModelConfig | dict, curve: list[dict] | None = None) -> str:
    """The markdown of a model card (a raw config dict is validated into a :class:`ModelConfig` first)."""
    if isinstance(cfg, dict):
        cfg = ModelConfig.from_dict(cfg)
    t = cfg.training
    enc, obj, fe, inf = cfg.encoder, cfg.objective, cfg.frontend, cfg.inference
    curve = curve if curve is not None else list(t.loss_curve)
    sr = cfg.sample_rate
    khz = f"{sr / 1000:g} kHz"
    return f"""---
library_name: audioemb
tags: [audio, self-supervised, embeddings, onnx, {obj.get('name', '')}]
---

# {cfg.name}

An audio embedding model trained with **{obj.get('name', '?')}** (self-supervised) by audioemb, shipped as a
self-describing folder: `config.json`, `model.safetensors`, and `model.onnx`, which maps a {khz} mono waveform
straight to an embedding (the log-mel frontend and its normalisation statistics are inside the graph). Audio at
any other rate or channel count is mixed to mono and resampled to {khz} before it reaches the model.

```bash
audioemb embed my_sounds/ -o out/ --model {command_ref(cfg.name)}
```
```python
import audioemb
model = audioemb.load("{command_ref(cfg.name)}")          # onnxruntime, no torch needed
emb = model.encode(["a.wav", "b.flac"])       # ({cfg.embedding_dim},) per clip, L2-normalised
frames = model.encode("long.wav", output="frames")  # {cfg.frame_rate_hz:g} frames/s, with timestamps
```

## Model

| | |
|---|---|
| objective | `{obj.get('name')}` {json.dumps({k: v for k, v in obj.items() if k != 'name'})} |
| encoder | `{enc['type']}` {json.dumps({k: v for k, v in enc.items() if k != 'type'})} |
| encoder parameters | {cfg.parameters:,}{_stored_text(cfg)} |
| embedding | {cfg.embedding_dim} dims (concat of mean and max of {cfg.frame_dim}-dim frames){_norm_text(cfg)} |
| frames | {cfg.frame_rate_hz:g} per second, {cfg.n_layers} layer{_s(cfg.n_layers)} selectable with `layer=` |
| frontend | log-mel, {fe.n_mels} bands, {fe.f_min:g}-{fe.f_max:g} Hz, n_fft {fe.n_fft}, \
hop {fe.hop_length} at {sr} Hz |
| inference | {inf.window_s:g} s windows ({inf.pooling}); inputs shorter than \
{inf.min_s:g} s are zero-padded |
| ONNX | opset {cfg.onnx.get('opset')}, {_onnx_parity(cfg)} |

{training_section(t, sr)}
{_loss_section(curve)}{_heldout_section(t.heldout_curve)}
{evaluation_section(cfg)}

## Licences

{licence_text(t)}
"""


def _batch_text(t: TrainingRecord) -> str:
    ws = t.env.world_size
    if ws > 1 and t.batch_size is not None:
        return f"{t.batch_size} recordings per process on {ws} processes ({t.global_batch} per step)"
    return f"{t.batch_size} recordings"


def _norm_text(cfg: ModelConfig) -> str:
    n = cfg.embedding_norm
    return f", standardised per dimension with the mean and std of the {n['fitted_on']}" if n else ""


def _where(t: TrainingRecord) -> str:
    """The device and machine a run used, as recorded (``training.env``), else the legacy ``hardware`` line."""
    env: EnvRecord = t.env
    if not env.recorded:
        return env.legacy or "an unrecorded machine"
    machine = env.machine or "an unrecorded machine"
    what = (f"a CUDA GPU, {env.device_name} ({machine})" if env.device == "cuda"
            else f"{str(env.device).upper()} ({machine})")
    n = env.threads_per_process
    per = f", {n} thread{'s' if n != 1 else ''} per process" if n else ""
    procs = env.world_size
    return f"{what}, {procs} process{'es' if procs > 1 else ''}{per}, {env.precision or '?'}"


def _q(v) -> str:
    return "?" if v is None else str(v)


def data_line(data: DataRecord, sr: int) -> str:
    """One bullet describing the training data, from ``training.data``."""
    if data.kind == "folders":
        names = ", ".join(f"`{f}`" for f in data.folders) or "(not recorded)"
        skipped = f" ({data.skipped} unreadable files skipped)" if data.skipped else ""
        plural = "s" if len(data.folders) > 1 else ""
        sha = str(data.file_list_sha256 or "")[:16]
        return (f"- data: the folder{plural} {names}: {_q(data.files)} audio files{skipped}, "
                f"{_q(data.clips)} clips, {_q(data.hours)} h, decoded to {sr / 1000:g} kHz mono; "
                f"sha256 of the sorted file list `{sha}…`\n")
    name = data.corpus or "a corpus"
    if data.kind == "corpus":
        name = f"the audioemb corpus ({data.data_tag or 'recipe'}) at `{Path(str(name)).name}`"
    line = (f"- data: {name}, recipe v{_q(data.recipe_version)}, {_q(data.clips)} training clips "
            f"({_q(data.hours)} h, {sr / 1000:g} kHz mono)")
    if data.manifest_sha256:
        line += f", manifest sha256 `{str(data.manifest_sha256)[:16]}…`"
    if data.file_list_sha256:
        line += f", file-list sha256 `{str(data.file_list_sha256)[:16]}…`"
    if data.subset:
        line += f"; {data.subset}"
    return line + "\n"


def init_line(init: dict | None) -> str:
    """The starting model of an adapted (``--init``) run, or nothing."""
    if not init:
        return ""
    sha = (init.get("sha256") or {}).get("model.safetensors")
    renorm = ("re-estimated on the new data" if init.get("renormalised")
              else "kept from the starting model")
    return (f"- started from `{init.get('name') or init.get('model')}` (given as `{init.get('model')}`"
            + (f", model.safetensors sha256 `{sha[:16]}…`" if sha else "") + f"); frontend normalisation statistics "
            f"{renorm}\n")


def training_section(t: TrainingRecord, sr: int) -> str:
    head = "## Training\n\n"
    common = data_line(t.data, sr) + init_line(t.init) + "".join(f"- after training: {a}\n" for a in t.after_training)
    tail = (f"- torch {t.torch}, audioemb {t.audioemb}, exported at commit `{t.git_commit}`, {t.date}\n"
            f"- collapse watch: std of L2-normalised embeddings of {t.collapse_clips or 'held-out corpus clips'} "
            f"× √dim = {t.final_collapse_std_heldout} (0 = collapsed, about 1 = spread)\n")
    if t.parts is not None:
        lines = [head, "Built from trained models, without further training:\n\n```bash\n",
                 f"{t.command or '(not recorded)'}\n```\n\n"]
        for name, p in t.parts.items():
            lines.append(f"- `{name}`: `{p.get('command')}`, {p.get('steps')} steps of {p.get('batch_size')} × "
                         f"{p.get('crop_s')} s, {(p.get('wall_time_s') or 0) / 3600:.2f} h on "
                         f"{p.get('hardware') or 'an unrecorded machine'}\n")
        return "".join(lines) + common + tail
    return (head + f"Trained on {_where(t)}, with the exact command:\n\n```bash\n"
            f"{t.command or '(not recorded)'}\n```\n\n" + common
            + f"- {t.steps} steps of {_batch_text(t)}, crops of {t.crop_s} s; "
            f"wall time {_duration(t.wall_time_s)}"
            + (f" ({t.wall_time_note})" if t.wall_time_note else "") + "\n" + tail)


def _onnx_parity(cfg: ModelConfig) -> str:
    """The ONNX graph's measured difference to torch, or, for a quantized variant, where its parity is."""
    if "max_abs_diff_vs_torch" in cfg.onnx:
        return f"max abs difference to torch {cfg.onnx['max_abs_diff_vs_torch']:.1e} on real clips"
    return "a quantized variant: its parity with the float model is in the variant section below"


def _duration(seconds: float) -> str:
    """Hours to two decimals; a run under six minutes in minutes or seconds (not "0.00 h")."""
    if seconds >= 360:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def licence_text(t: TrainingRecord) -> str:
    """Licences of the code, the weights and the training audio, from what the config records."""
    data = t.data
    if data.kind == "folders":
        return ("Code: Apache-2.0. The training audio is the user's own collection; audioemb records no licence for "
                "it, and the weights carry whatever terms that audio's owners set.")
    listed = [f"{p} ({lic})" if lic else p for p, lic in data.licences]
    if data.unlicensed:
        listed.append(f"{', '.join(data.unlicensed)} (licence not recorded; see each package's debian/copyright)")
    if not listed:
        return "Code and weights: Apache-2.0. The training data's licences were not recorded."
    return f"Code and weights: Apache-2.0. Training audio (Debian packages): {', '.join(listed)}."


def _loss_section(curve: list[dict]) -> str:
    if not curve:
        return ""
    marks = [r for r in curve if r["step"] in _marks([r["step"] for r in curve])]
    rows = "\n".join(f"| {r['step']} | {r['loss']:.4f} | {r.get('collapse_std')} |" for r in marks)
    return "![loss curve](loss.png)\n\n| step | loss | collapse_std (batch) |\n|---|---|---|\n" + rows + "\n"


def _heldout_section(curve: tuple[dict, ...]) -> str:
    """Held-out domain means (linear probe / kNN p@10 / few-shot) of the weights kept along the run."""
    if not curve:
        return ""
    keys = [d for d in ("speech", "music", "sound") if any(f"{d}/probe_acc" in r["means"] for r in curve)]
    if not keys:
        return ""

    def cell(m: dict, d: str) -> str:
        return " / ".join(f"{m[k]:.3f}" if (k := f"{d}/{x}") in m else "-"
                          for x in ("probe_acc", "knn_p10", "fewshot_acc"))

    head = "| step | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys) + "\n"
    rows = "".join(f"| {r['step']} | " + " | ".join(cell(r["means"], d) for d in keys) + " |\n" for r in curve)
    return ("\nHeld-out figures of the weights kept along the run (domain means of linear probe / kNN p@10 / "
            "few-shot accuracy):\n\n" + head + rows)


def _marks(steps: list[int], n: int = 8) -> set[int]:
    if not steps:
        return set()
    idx = sorted({round(i * (len(steps) - 1) / (n - 1)) for i in range(n)})
    return {steps[i] for i in idx}


def _plot(path: Path, curve: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
    ax.plot([r["step"] for r in curve], [r["loss"] for r in curve], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
