"""The model card (README.md) of a model folder, generated from its config.json.

Everything the card states comes from the config: the sample rate, where the model was trained (device and
machine), on what (corpus or the user's folders: names, file count, hours, file-list sha256), from which
starting model, and the licences the training data carries. Nothing about the data or the machine is assumed.
"""

from __future__ import annotations

import json
from pathlib import Path

from .eval.tables import evaluation_section

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
_V1_SYNTH = "espeak-ng (GPL-3; its voices render the corpus's synthesised speech)"


def write_card(folder: Path, curve: list[dict] | None = None) -> None:
    """Write ``folder/README.md`` (and ``loss.png`` when there is a loss curve)."""
    cfg = json.loads((folder / "config.json").read_text())
    t = cfg.get("training", {})
    curve = curve or t.get("loss_curve", [])
    if curve:
        _plot(folder / "loss.png", curve, cfg["name"])
    (folder / "README.md").write_text(render_card(cfg, curve))


def render_card(cfg: dict, curve: list[dict] | None = None) -> str:
    """The markdown of a model card."""
    t = cfg.get("training", {})
    enc, obj, fe = cfg["encoder"], cfg.get("objective", {}), cfg["frontend"]
    curve = curve if curve is not None else t.get("loss_curve", [])
    sr = cfg["sample_rate"]
    khz = f"{sr / 1000:g} kHz"
    return f"""---
library_name: audioemb
tags: [audio, self-supervised, embeddings, onnx, {obj.get('name', '')}]
---

# {cfg['name']}

An audio embedding model trained with **{obj.get('name', '?')}** (self-supervised) by audioemb, shipped as a
self-describing folder: `config.json`, `model.safetensors`, and `model.onnx`, which maps a {khz} mono waveform
straight to an embedding (the log-mel frontend and its normalisation statistics are inside the graph). Audio at
any other rate or channel count is mixed to mono and resampled to {khz} before it reaches the model.

```bash
audioemb embed my_sounds/ -o out/ --model {cfg['name']}
```
```python
import audioemb
model = audioemb.load("{cfg['name']}")          # onnxruntime, no torch needed
emb = model.encode(["a.wav", "b.flac"])       # ({cfg['embedding_dim']},) per clip, L2-normalised
frames = model.encode("long.wav", output="frames")  # {cfg['frame_rate_hz']:g} frames/s, with timestamps
```

## Model

| | |
|---|---|
| objective | `{obj.get('name')}` {json.dumps({k: v for k, v in obj.items() if k != 'name'})} |
| encoder | `{enc['type']}` {json.dumps({k: v for k, v in enc.items() if k != 'type'})} |
| encoder parameters | {cfg.get('parameters', 0):,} |
| embedding | {cfg['embedding_dim']} dims (concat of mean and max of {cfg['frame_dim']}-dim frames) |
| frames | {cfg['frame_rate_hz']:g} per second, {cfg['n_layers']} layers selectable with `layer=` |
| frontend | log-mel, {fe['n_mels']} bands, {fe['f_min']:g}-{fe['f_max']:g} Hz, n_fft {fe['n_fft']}, \
hop {fe['hop_length']} at {sr} Hz |
| inference | {cfg['inference']['window_s']:g} s windows ({cfg['inference']['pooling']}); inputs shorter than \
{cfg['inference']['min_s']:g} s are zero-padded |
| ONNX | opset {cfg['onnx']['opset']}, max abs difference to torch \
{cfg['onnx']['max_abs_diff_vs_torch']:.1e} on real clips |

{training_section(t, sr)}
{_loss_section(curve)}
{evaluation_section(cfg)}

## Licences

{licence_text(t)}
"""


def _where(t: dict) -> str:
    """The device and machine a run used, as recorded (``training.env``), else the legacy ``hardware`` field."""
    env = t.get("env")
    if env:
        machine = env.get("machine") or "an unrecorded machine"
        what = (f"a CUDA GPU, {env.get('device_name')} ({machine})" if env.get("device") == "cuda"
                else f"{str(env.get('device', '?')).upper()} ({machine})")
        procs = env.get("world_size", 1)
        n = env.get("threads_per_process")
        per = f", {n} thread{'s' if n != 1 else ''} per process" if n else ""
        return f"{what}, {procs} process{'es' if procs > 1 else ''}{per}, {env.get('precision', '?')}"
    return t.get("hardware") or "an unrecorded machine"


def data_line(data: dict, sr: int) -> str:
    """One bullet describing the training data, from ``training.data``."""
    if data.get("kind") == "folders":
        names = ", ".join(f"`{f}`" for f in data.get("folders", [])) or "(not recorded)"
        skipped = f" ({data['skipped']} unreadable files skipped)" if data.get("skipped") else ""
        plural = "s" if len(data.get("folders", [])) > 1 else ""
        sha = str(data.get("file_list_sha256", ""))[:16]
        return (f"- data: the folder{plural} {names}: {data.get('files', '?')} audio files{skipped}, "
                f"{data.get('clips', '?')} clips, {data.get('hours', '?')} h, decoded to {sr / 1000:g} kHz mono; "
                f"sha256 of the sorted file list `{sha}…`\n")
    hours = data.get("hours", data.get("train_hours", "?"))
    clips = data.get("clips", data.get("train_clips", "?"))
    name = data.get("corpus") or "a corpus"
    if data.get("kind") == "corpus":
        name = f"the audioemb corpus ({data.get('data_tag') or 'recipe'}) at `{Path(str(name)).name}`"
    line = (f"- data: {name}, recipe v{data.get('recipe_version', '?')}, {clips} training clips ({hours} h, "
            f"{sr / 1000:g} kHz mono)")
    if data.get("manifest_sha256"):
        line += f", manifest sha256 `{str(data['manifest_sha256'])[:16]}…`"
    if data.get("file_list_sha256"):
        line += f", file-list sha256 `{str(data['file_list_sha256'])[:16]}…`"
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


def training_section(t: dict, sr: int) -> str:
    head = "## Training\n\n"
    data = t.get("data", {})
    common = data_line(data, sr) + init_line(t.get("init"))
    tail = (f"- torch {t.get('torch')}, audioemb {t.get('audioemb')}, exported at commit `{t.get('git_commit')}`, "
            f"{t.get('date')}\n"
            f"- collapse watch: std of L2-normalised held-out embeddings × √dim = "
            f"{t.get('final_collapse_std_heldout')} (0 = collapsed, about 1 = spread)\n")
    if "parts" in t:
        lines = [head, "Built from trained models, without further training:\n\n```bash\n",
                 f"{t.get('command') or '(not recorded)'}\n```\n\n"]
        for name, p in t["parts"].items():
            lines.append(f"- `{name}`: `{p.get('command')}`, {p.get('steps')} steps of {p.get('batch_size')} × "
                         f"{p.get('crop_s')} s, {(p.get('wall_time_s') or 0) / 3600:.2f} h on "
                         f"{p.get('hardware') or 'an unrecorded machine'}\n")
        return "".join(lines) + common + tail
    return (head + f"Trained on {_where(t)}, with the exact command:\n\n```bash\n"
            f"{t.get('command') or '(not recorded)'}\n```\n\n" + common
            + f"- {t.get('steps')} steps of {t.get('batch_size')} recordings, crops of {t.get('crop_s')} s; "
            f"wall time {(t.get('wall_time_s') or 0) / 3600:.2f} h\n" + tail)


def licence_text(t: dict) -> str:
    """Licences of the code, the weights and the training audio, from what the config records."""
    data = t.get("data", {})
    if data.get("kind") == "folders":
        return ("Code: Apache-2.0. The training audio is the user's own collection; audioemb records no licence for "
                "it, and the weights carry whatever terms that audio's owners set.")
    lic = data.get("licences")
    if lic:
        listed = ", ".join(f"{x['package']} ({x['licence']})" if isinstance(x, dict) else str(x) for x in lic)
    else:
        pkgs = list(data.get("packages", {}))
        known = [f"{p} ({_V1_LICENCES[p]})" for p in pkgs if p in _V1_LICENCES]
        if known and data.get("recipe_version") == 1:
            known.append(_V1_SYNTH)
        rest = [p for p in pkgs if p not in _V1_LICENCES]
        listed = ", ".join(known + ([f"{', '.join(rest)} (licence not recorded; see each package's "
                                     "debian/copyright)"] if rest else []))
    if not listed:
        return "Code and weights: Apache-2.0. The training data's licences were not recorded."
    return f"Code and weights: Apache-2.0. Training audio (Debian packages): {listed}."


def _loss_section(curve: list[dict]) -> str:
    if not curve:
        return ""
    marks = [r for r in curve if r["step"] in _marks([r["step"] for r in curve])]
    rows = "\n".join(f"| {r['step']} | {r['loss']:.4f} | {r.get('collapse_std')} |" for r in marks)
    return "![loss curve](loss.png)\n\n| step | loss | collapse_std (batch) |\n|---|---|---|\n" + rows + "\n"


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
    fig.savefig(path)
    plt.close(fig)
