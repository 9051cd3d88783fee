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


def _heldout_waves(corpus: Path, n: int = 256) -> list[np.ndarray]:
    """A fixed sample of held-out corpus clips (collapse check and ONNX parity)."""
    import soundfile as sf

    rows = read_manifest(corpus, "eval")
    pick = np.random.default_rng(0).choice(len(rows), size=min(n, len(rows)), replace=False)
    return [sf.read(str(corpus / rows[i]["path"]), dtype="float32")[0] for i in pick]


def _check_collapse(model: AudioEmbedder, waves: list[np.ndarray]) -> float:
    with torch.inference_mode():
        emb = torch.cat([model(torch.from_numpy(w[None]))[0] for w in waves if len(w) > model.min_samples])
    cstd = collapse_std(emb)
    if cstd < COLLAPSE_THRESHOLD:
        raise RuntimeError(f"the encoder has collapsed (collapse_std {cstd:.4f} < {COLLAPSE_THRESHOLD}); not shipping")
    return cstd


def _save_and_evaluate(model: AudioEmbedder, out: Path, meta: dict, corpus: Path, waves: list[np.ndarray],
                       evaluate: bool, log) -> dict:
    from ..eval.baselines import LogMelStats, random_init_model
    from ..eval.run import corpus_tasks
    from ..eval.run import evaluate as run_eval
    from ..runtime import load

    parity = [w for w in [*waves[:6], np.concatenate(waves[6:12])] if len(w) > model.min_samples]
    config = save_model(model, out, meta, parity)
    log(f"saved {out} (ONNX max abs diff {config['onnx']['max_abs_diff_vs_torch']:.2e})")
    if evaluate:
        models = [load(out), random_init_model(str(out)), LogMelStats(config["frontend"])]
        result = run_eval(models, corpus_tasks(corpus), log=log)
        _add_reference(result, config["name"])
        config["metrics"] = {"heldout_tasks": result["tasks"], "results": result["results"],
                             "protocol": "audioemb eval: 5-fold linear probe (grouped), kNN precision@10 and mAP on "
                                         "cosine similarity, same-group neighbours excluded"}
        write_config(out, config)
    return config


REFERENCE_MODEL = "byol-s.debian"  # every card compares with BYOL, the trainer's first objective


def _add_reference(result: dict, name: str) -> None:
    """Put BYOL's and the default model's stored figures beside a new model's, when measured on the same tasks."""
    from ..registry import DEFAULT_MODEL, model_configs

    for ref_name in dict.fromkeys([REFERENCE_MODEL, DEFAULT_MODEL]):
        if ref_name == name:
            continue
        for cfg in model_configs(ref_name).values():  # empty when that model isn't shipped
            metrics = cfg.get("metrics", {})
            if metrics.get("heldout_tasks") == result["tasks"] and ref_name in metrics.get("results", {}):
                result["results"][ref_name] = metrics["results"][ref_name]


def _data_meta(corpus: Path) -> dict:
    recipe = json.loads((corpus / "recipe.json").read_text())
    return {"corpus": "audioemb Debian corpus (audioemb corpus build)",
            "recipe_version": recipe["recipe_version"], "manifest_sha256": recipe["manifest_sha256"],
            "train_hours": recipe["train_hours"], "train_clips": len(read_manifest(corpus, "train")),
            "packages": {k: v["version"] for k, v in recipe["packages"].items()}}


def package_run(run_dir: Path, out: Path, corpus: Path, evaluate: bool = True, log=print) -> dict:
    """Export ``run_dir``'s encoder to the model folder ``out``, evaluate it and write its card.

    Refuses an unfinished run and a collapsed encoder (collapse_std of held-out clip embeddings below
    the threshold).
    """
    cfg, obj, info = load_run(run_dir)
    if info["step"] < cfg.steps:
        raise ValueError(f"{run_dir} stopped at step {info['step']} of {cfg.steps}; finish training first")
    model = AudioEmbedder(obj.frontend, obj.encoder).eval()
    waves = _heldout_waves(corpus)
    cstd = _check_collapse(model, waves)
    cmd_file = run_dir / "command.json"
    command = json.loads(cmd_file.read_text()) if cmd_file.exists() else {}
    curve = _loss_curve(run_dir)
    meta = {
        "name": cfg.name,
        "objective": {"name": cfg.objective, **cfg.objective_params},
        "training": {
            "command": command.get("argv"),
            "recipe": json.loads((run_dir / "config.json").read_text()),
            "steps": info["step"], "batch_size": cfg.batch_size, "crop_s": cfg.crop_s,
            "wall_time_s": round(info["wall_s"], 1),
            "hardware": f"{platform.processor() or platform.machine()}, {cfg.threads} CPU threads, {cfg.precision}",
            "torch": torch.__version__, "audioemb": __version__, "git_commit": _git_commit(),
            "date": dt.date.today().isoformat(), "data": _data_meta(corpus),
            "loss_curve": [{"step": r["step"], "loss": round(r["loss"], 4),
                            "collapse_std": r.get("collapse_std")} for r in curve],
            "final_collapse_std_heldout": round(cstd, 4),
        },
    }
    config = _save_and_evaluate(model, out, meta, corpus, waves, evaluate, log)
    write_card(out, curve)
    return config


def package_concat(folders: list[Path], out: Path, name: str, corpus: Path, evaluate: bool = True,
                   log=print) -> dict:
    """One model folder whose encoder runs several shipped encoders and concatenates their frames
    (forward + backward APC). The parts must share the frontend and its normalisation statistics."""
    from ..modelfolder import open_folder
    from ..nn.encoders import ConcatEncoder
    from ..nn.export import load_module

    parts = [open_folder(f) for f in folders]
    modules = [load_module(p) for p in parts]
    f0 = modules[0].frontend
    for p, m in zip(parts[1:], modules[1:]):
        if p.config["frontend"] != parts[0].config["frontend"] or not (
                torch.allclose(m.frontend.mean, f0.mean) and torch.allclose(m.frontend.std, f0.std)):
            raise ValueError(f"{p.path} has another frontend or normalisation statistics than {parts[0].path}")
    enc = ConcatEncoder([m.encoder.config() for m in modules])
    for part, m in zip(enc.parts, modules):
        part.load_state_dict(m.encoder.state_dict())
    model = AudioEmbedder(f0, enc).eval()
    waves = _heldout_waves(corpus)
    cstd = _check_collapse(model, waves)
    import shlex
    import sys

    meta = {
        "name": name,
        "objective": {"name": "concat", "parts": [p.config.get("objective", {}) for p in parts]},
        "training": {
            "command": "audioemb " + shlex.join(sys.argv[1:]) if sys.argv and "export" in sys.argv else None,
            "parts": {p.name: {k: p.config.get("training", {}).get(k) for k in
                               ("command", "steps", "batch_size", "crop_s", "wall_time_s", "hardware", "date")}
                      for p in parts},
            "wall_time_s": sum(p.config.get("training", {}).get("wall_time_s", 0) for p in parts),
            "torch": torch.__version__, "audioemb": __version__, "git_commit": _git_commit(),
            "date": dt.date.today().isoformat(), "data": _data_meta(corpus),
            "final_collapse_std_heldout": round(cstd, 4),
        },
    }
    config = _save_and_evaluate(model, out, meta, corpus, waves, evaluate, log)
    write_card(out, [])
    return config
