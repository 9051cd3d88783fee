"""The model card (README.md) of a model folder, generated from its config.json."""

from __future__ import annotations

import json
from pathlib import Path

TASK_NOTES = {
    "speech-keyword": "20 keywords, espeak-ng voices never heard in training (grouped by voice)",
    "speech-speaker": "which of 15 Hedgewars voice packs speaks, on held-out phrases (grouped by phrase)",
    "speech-language": "language of Tux Paint stamp descriptions, held-out stamps (grouped by stamp)",
    "speech-tone": "Mandarin tone of gcin syllables, held-out syllables (grouped by syllable)",
    "music-family": "GM instrument family of FluidR3 notes (grouped by program: unseen instruments)",
    "music-pitch": "MIDI pitch 48-72 of FluidR3 notes (grouped by program)",
    "sound-category": "Sonic Pi sample category and Tux Paint animal class, held-out samples",
}
DATA_LICENCES = ("fillets-ng-data (GPL-2), tuxpaint-stamps-default (GPL-2), klettres-data (GPL-2+), "
                 "ktuberling-data (GPL-2+), hedgewars-data (GFDL-1.3), gcin-voice (GPL-3 / CC-BY-3), espeak-ng "
                 "(GPL-3), fluid-soundfont-gm (MIT-style), sonic-pi-samples (MIT), supertux-data, freedroidrpg-data, "
                 "lincity-ng-data, colobot-common-sounds, sound-theme-freedesktop, oxygen-sounds (free licences "
                 "listed in each package's debian/copyright)")


def metrics_table(cfg: dict) -> str:
    """Held-out task table: the model, its untrained encoder and the log-mel baseline."""
    m = cfg.get("metrics", {})
    if not m.get("results"):
        return "_Not evaluated yet._"
    res = m["results"]
    names = list(res)
    head = " | ".join(f"{n}<br>probe · kNN@10 · mAP" for n in names)
    lines = [f"| task | clips / classes | {head} |",
             "|---|---|" + "---|" * len(names)]
    for task, info in m["heldout_tasks"].items():
        cells = []
        best = max(res[n][task]["probe_acc"] for n in names)
        for n in names:
            r = res[n][task]
            acc = f"**{r['probe_acc']:.3f}**" if r["probe_acc"] == best else f"{r['probe_acc']:.3f}"
            cells.append(f"{acc} ± {r['probe_std']:.3f} · {r['knn_p10']:.3f} · {r['map']:.3f}")
        lines.append(f"| {task} | {info['clips']} / {info['classes']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(cfg: dict) -> str:
    """Where the model wins or loses against each baseline, by probe accuracy, said plainly."""
    res = cfg.get("metrics", {}).get("results")
    if not res:
        return ""
    name = cfg["name"]
    others = [n for n in res if n != name]
    out = []
    for o in others:
        wins = [t for t in res[name] if res[name][t]["probe_acc"] > res[o][t]["probe_acc"]]
        losses = [t for t in res[name] if t not in wins]
        s = f"- against **{o}**: better on {len(wins)} of {len(res[name])} tasks"
        s += f"; worse or equal on {', '.join(losses)}." if losses else "."
        out.append(s)
    domains = sorted({t.split("-")[0] for t in res[name]})
    means = {n: {d: _mean(res[n], d) for d in domains} for n in res}
    out.append("\nMean probe accuracy by domain (the bar a default model must clear: it beats both baselines on "
               "speech and on music):\n")
    out.append("| domain | " + " | ".join(res) + " |")
    out.append("|---|" + "---|" * len(res))
    for d in domains:
        out.append(f"| {d} | " + " | ".join(f"{means[n][d]:.3f}" for n in res) + " |")
    beaten = [d for d in ("speech", "music") if d in domains
              and any(means[o][d] >= means[name][d] for o in others if "@random-init" in o or o == "logmel-stats")]
    out.append("\n" + (f"**Misses the bar on {' and '.join(beaten)}**: a baseline scores as high or higher there."
                       if beaten else "Beats both baselines on the speech and music means."))
    return "\n".join(out)


def _mean(r: dict, domain: str) -> float:
    vals = [v["probe_acc"] for t, v in r.items() if t.split("-")[0] == domain]
    return sum(vals) / len(vals)


def write_card(folder: Path, curve: list[dict] | None = None) -> None:
    """Write ``folder/README.md`` (and ``loss.png`` when a loss curve is given)."""
    cfg = json.loads((folder / "config.json").read_text())
    t = cfg.get("training", {})
    enc = cfg["encoder"]
    obj = cfg.get("objective", {})
    curve = curve or t.get("loss_curve", [])
    if curve:
        _plot(folder / "loss.png", curve, cfg["name"])
    marks = [r for r in curve if r["step"] in _marks([r["step"] for r in curve])]
    loss_rows = "\n".join(f"| {r['step']} | {r['loss']:.4f} | {r.get('collapse_std')} |" for r in marks)
    data = t.get("data", {})
    training_section = _training_section(t, data)
    loss_section = ("![loss curve](loss.png)\n\n| step | loss | collapse_std (batch) |\n|---|---|---|\n"
                    + loss_rows + "\n") if curve else ""
    task_lines = "\n".join(f"- `{k}`: {v}" for k, v in TASK_NOTES.items()
                           if k in cfg.get("metrics", {}).get("heldout_tasks", {}))
    card = f"""---
library_name: audioemb
tags: [audio, self-supervised, embeddings, onnx, {obj.get('name', '')}]
---

# {cfg['name']}

An audio embedding model trained with **{obj.get('name', '?')}** (self-supervised) by audioemb, shipped as a
self-describing folder: `config.json`, `model.safetensors`, and `model.onnx`, which maps a 16 kHz mono waveform
straight to an embedding (the log-mel frontend and its normalisation statistics are inside the graph).

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
| frontend | log-mel, {cfg['frontend']['n_mels']} bands, {cfg['frontend']['f_min']:g}-{cfg['frontend']['f_max']:g} Hz, \
n_fft {cfg['frontend']['n_fft']}, hop {cfg['frontend']['hop_length']} at {cfg['sample_rate']} Hz |
| inference | {cfg['inference']['window_s']:g} s windows ({cfg['inference']['pooling']}); inputs shorter than \
{cfg['inference']['min_s']:g} s are zero-padded |
| ONNX | opset {cfg['onnx']['opset']}, max abs difference to torch \
{cfg['onnx']['max_abs_diff_vs_torch']:.1e} on real clips |

{training_section}
{loss_section}
## Held-out evaluation

Clips never used in training, from the corpus's held-out groups. Linear probe: 5-fold cross-validated logistic
regression on standardised embeddings, folds grouped so no group is on both sides; kNN precision@10 and mAP on
cosine similarity, excluding neighbours from the query's own group. Beside the model: the same encoder with
random weights (`@random-init`) and per-band log-mel mean+std (`logmel-stats`). Bold marks the best probe.

{task_lines}

{metrics_table(cfg)}

{verdict(cfg)}

## Licences

Code and weights: Apache-2.0. Training audio (Debian packages): {DATA_LICENCES}.
"""
    (folder / "README.md").write_text(card)


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


def _training_section(t: dict, data: dict) -> str:
    head = "## Training\n\n"
    common = (f"- data: {data.get('corpus', '?')}, recipe v{data.get('recipe_version')}, "
              f"{data.get('train_clips', '?')} training clips ({data.get('train_hours', '?')} h, 16 kHz mono), "
              f"manifest sha256 `{str(data.get('manifest_sha256', ''))[:16]}…`\n")
    tail = (f"- torch {t.get('torch')}, audioemb {t.get('audioemb')}, exported at commit `{t.get('git_commit')}`, "
            f"{t.get('date')}\n"
            f"- collapse watch: std of L2-normalised held-out embeddings × √dim = "
            f"{t.get('final_collapse_std_heldout')} (0 = collapsed, about 1 = spread)\n")
    if "parts" in t:
        lines = [head, "Built from trained models, without further training:\n\n```bash\n",
                 f"{t.get('command') or '(not recorded)'}\n```\n\n"]
        for name, p in t["parts"].items():
            lines.append(f"- `{name}`: `{p.get('command')}`, {p.get('steps')} steps of {p.get('batch_size')} × "
                         f"{p.get('crop_s')} s, {(p.get('wall_time_s') or 0) / 3600:.2f} h\n")
        return "".join(lines) + common + tail
    return (head + "Trained on this project's CPU machine (no GPU) with the exact command:\n\n```bash\n"
            f"{t.get('command') or '(not recorded)'}\n```\n\n" + common
            + f"- {t.get('steps')} steps of {t.get('batch_size')} recordings, crops of {t.get('crop_s')} s; "
            f"wall time {t.get('wall_time_s', 0) / 3600:.2f} h on {t.get('hardware', '?')}\n" + tail)
