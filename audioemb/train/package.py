"""From a finished training run to a shipped model folder: weights, ONNX, figures and model card."""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..card import write_card
from ..modelfolder import write_config
from ..nn.encoders import build_encoder
from ..nn.export import save_model
from ..nn.frontend import LogMel, LogMelConfig
from ..nn.model import AudioEmbedder
from ..objectives import get_objective
from .checkpoint import load_checkpoint
from .data import read_manifest
from .trainer import COLLAPSE_THRESHOLD, TrainConfig, collapse_std
from .views import Views


def load_run(run_dir: Path):
    """(TrainConfig, objective with trained weights, checkpoint meta) of a run folder."""
    cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    frontend = LogMel(LogMelConfig(**{k: v for k, v in cfg.frontend.items() if k != "type"}))
    encoder = build_encoder(cfg.encoder)
    obj = get_objective(cfg.objective)(encoder, frontend, Views(cfg.views, std=frontend.std), **cfg.objective_params)
    ckpt = run_dir / "checkpoint.safetensors"
    obj.setup(json.loads(ckpt.with_name(ckpt.name + ".json").read_text()).get("n_clips", 0))
    info = load_checkpoint(ckpt, obj, None)
    return cfg, obj.eval(), info


def _git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _loss_curve(run_dir: Path) -> list[dict]:
    p = run_dir / "log.jsonl"
    if not p.exists():
        return []
    rows, seen = [], set()
    for line in p.read_text().splitlines():
        r = json.loads(line)
        if r["step"] not in seen:  # a resumed run may log a step twice; keep the first
            seen.add(r["step"])
            rows.append(r)
    return sorted(rows, key=lambda r: r["step"])


def package_run(run_dir: Path, out: Path, corpus: Path, evaluate: bool = True, log=print) -> dict:
    """Export ``run_dir``'s encoder to the model folder ``out`` and write its card.

    Refuses a collapsed encoder (collapse_std of held-out clip embeddings below the threshold).
    """
    from ..eval.baselines import LogMelStats, random_init_model
    from ..eval.run import corpus_tasks
    from ..eval.run import evaluate as run_eval
    from ..runtime import load

    cfg, obj, info = load_run(run_dir)
    if info["step"] < cfg.steps:
        raise ValueError(f"{run_dir} stopped at step {info['step']} of {cfg.steps}; finish training first")
    model = AudioEmbedder(obj.frontend, obj.encoder).eval()
    rows = read_manifest(corpus, "eval")
    rng = np.random.default_rng(0)
    pick = rng.choice(len(rows), size=min(256, len(rows)), replace=False)
    import soundfile as sf

    waves = [sf.read(str(corpus / rows[i]["path"]), dtype="float32")[0] for i in pick]
    with torch.inference_mode():
        emb = torch.cat([model(torch.from_numpy(w[None]))[0] for w in waves if len(w) > model.min_samples])
    cstd = collapse_std(emb)
    if cstd < COLLAPSE_THRESHOLD:
        raise RuntimeError(f"the encoder has collapsed (collapse_std {cstd:.4f} < {COLLAPSE_THRESHOLD}); not shipping")
    recipe = json.loads((corpus / "recipe.json").read_text())
    cmd_file = run_dir / "command.json"
    command = json.loads(cmd_file.read_text()) if cmd_file.exists() else {}
    curve = _loss_curve(run_dir)
    meta = {
        "name": cfg.name,
        "objective": {"name": cfg.objective, **cfg.objective_params},
        "training": {
            "command": command.get("argv"),
            "recipe": {k: v for k, v in json.loads((run_dir / "config.json").read_text()).items()},
            "steps": info["step"], "batch_size": cfg.batch_size, "crop_s": cfg.crop_s,
            "wall_time_s": round(info["wall_s"], 1),
            "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads",
            "torch": torch.__version__, "audioemb": __version__, "git_commit": _git_commit(),
            "date": dt.date.today().isoformat(),
            "data": {"corpus": "audioemb Debian corpus (audioemb corpus build)",
                     "recipe_version": recipe["recipe_version"], "manifest_sha256": recipe["manifest_sha256"],
                     "train_hours": recipe["train_hours"],
                     "train_clips": sum(1 for r in read_manifest(corpus, "train")),
                     "packages": {k: v["version"] for k, v in recipe["packages"].items()}},
            "loss_curve": [{"step": r["step"], "loss": round(r["loss"], 4),
                            "collapse_std": r.get("collapse_std")} for r in curve],
            "final_collapse_std_heldout": round(cstd, 4),
        },
    }
    parity = [w for w in [*waves[:6], np.concatenate(waves[6:12])] if len(w) > model.min_samples]
    config = save_model(model, out, meta, parity)
    log(f"saved {out} (ONNX max abs diff {config['onnx']['max_abs_diff_vs_torch']:.2e})")
    if evaluate:
        tasks = corpus_tasks(corpus)
        models = [load(out), random_init_model(str(out)), LogMelStats(config["frontend"])]
        result = run_eval(models, tasks, log=log)
        config["metrics"] = {"heldout_tasks": result["tasks"], "results": result["results"],
                             "protocol": "audioemb eval: 5-fold linear probe (grouped), kNN precision@10 and mAP on "
                                         "cosine similarity, same-group neighbours excluded"}
        write_config(out, config)
    write_card(out, curve)
    return config
