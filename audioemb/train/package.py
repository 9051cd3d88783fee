"""From a finished training run to a model folder: weights, ONNX, figures and a truthful model card.

The card states what the run folder records (``data.json``, ``env.json``, ``init.json``, written by the
trainer): the data, the device and machine, the starting model. Runs trained before those files existed
fall back to the corpus recipe. The folder is built beside the target and renamed into place at the end,
so an interrupted export leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..card import write_card
from ..eval.export_eval import ExportError
from ..fsio import pid_alive
from ..modelfolder import write_config
from ..nn.export import save_model
from ..nn.model import AudioEmbedder
from ..objectives import build_objective
from .checkpoint import load_checkpoint, read_meta
from .data import read_manifest
from .trainer import COLLAPSE_THRESHOLD, TrainConfig, collapse_std


def load_run(run_dir: Path):
    """(TrainConfig, objective with trained weights, checkpoint meta) of a run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run folder")
    ckpt = run_dir / "checkpoint.safetensors"
    if not (run_dir / "config.json").is_file() or not ckpt.is_file():
        raise ExportError(f"{run_dir}: not a training run (no config.json and checkpoint.safetensors); give the "
                          "--out folder of `audioemb train`")
    try:
        cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
        meta = read_meta(ckpt)
    except Exception as e:  # JSON, OS and safetensors header errors of a damaged or foreign run
        raise ExportError(f"{run_dir}: not a readable training run ({e})") from None
    obj = build_objective(cfg, meta.get("n_clips", 0))
    try:
        info = load_checkpoint(ckpt, obj, None)
    except Exception as e:  # safetensors, shape and key errors of a damaged or foreign checkpoint
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ExportError(f"{ckpt}: cannot load the checkpoint ({why})") from None
    return cfg, obj.eval(), info


def run_records(run_dir: Path) -> dict:
    """``data``, ``env``, ``init`` and ``command`` of a run folder (each None when the run did not write it)."""
    out = {}
    for key, fname in (("data", "data.json"), ("env", "env.json"), ("init", "init.json"), ("command", "command.json")):
        p = Path(run_dir) / fname
        out[key] = json.loads(p.read_text()) if p.is_file() else None
    return out


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


def _heldout_curve(run_dir: Path) -> list[dict]:
    """The held-out domain means of the run's kept checkpoints, as ``train.heldout.score_kept`` recorded them."""
    from .heldout import read_curve  # heldout imports this module

    return [{"step": r["step"], "means": r["means"]} for r in read_curve(run_dir)]


def _decode(paths: list[Path], sr: int, n: int) -> list[np.ndarray]:
    from ..audio import AudioError, load

    pick = np.random.default_rng(0).permutation(len(paths))
    out = []
    for i in pick:
        if len(out) >= n:
            break
        try:
            out.append(load(paths[i], sr)[: 10 * sr])
        except (AudioError, OSError, ValueError):
            continue  # the collapse check and parity only need some readable clips
    return out


def check_waves(corpus: Path | None, eval_paths: list[Path], data: dict | None, sr: int, n: int = 256) -> list:
    """Clips to check the export on (collapse and ONNX parity): the corpus's held-out clips, else the
    ``--eval`` clips, else a sample of the training folders."""
    import soundfile as sf

    if waves_source(corpus, bool(eval_paths)) == HELD_OUT_CLIPS:
        rows = read_manifest(corpus, "eval")
        pick = np.random.default_rng(0).choice(len(rows), size=min(n, len(rows)), replace=False)
        return [sf.read(str(corpus / rows[i]["path"]), dtype="float32")[0] for i in pick]
    if eval_paths:
        return _decode(eval_paths, sr, n)
    if data and data.get("kind") == "folders":
        from ..audio import find_audio

        files = [p for f in data.get("folders", []) if Path(f).is_dir() for p in find_audio(f)]
        if files:
            return _decode(files, sr, n)
    raise ExportError("no audio to check the export on (collapse, ONNX parity): give --corpus or --eval, or keep "
                      "the run's training folders in place")


def _command(recorded: dict | None) -> str | None:
    """The training command as the card quotes it; relative paths in it are read from the folder it ran in."""
    if not recorded or not recorded.get("argv"):
        return None
    return recorded["argv"] + (f"  # run in {recorded['cwd']}" if recorded.get("cwd") else "")


HELD_OUT_CLIPS = "held-out corpus clips"


def waves_source(corpus: Path | None, eval_given: bool) -> str:
    """What :func:`check_waves` reads (it decides by this), as a card names it."""
    if corpus is not None and (corpus / "manifest.jsonl").is_file() and read_manifest(corpus, "eval"):
        return HELD_OUT_CLIPS
    return "the --eval clips" if eval_given else "clips of the training folders (not held out)"


def parity_waves(waves: list[np.ndarray], min_samples: int) -> list[np.ndarray]:
    """The clips an export's ONNX parity is checked on: six of ``waves`` and one long clip joined from the next
    six (from the first when there are no more), so window stitching is checked too."""
    return [w for w in [*waves[:6], np.concatenate(waves[6:12] or waves[:1])] if len(w) > min_samples]


def _check_collapse(model: AudioEmbedder, waves: list[np.ndarray]) -> float:
    with torch.inference_mode():
        emb = torch.cat([model(torch.from_numpy(w[None]))[0] for w in waves if len(w) > model.min_samples])
    cstd = collapse_std(emb)
    if cstd < COLLAPSE_THRESHOLD:
        raise ExportError(f"the encoder has collapsed (collapse_std {cstd:.4f} < {COLLAPSE_THRESHOLD}); not shipping")
    return cstd


def _data_meta(corpus: Path | None, data: dict | None) -> dict:
    """What the run trained on: ``data.json`` (folders as names only), else the corpus recipe (older runs)."""
    if data:
        d = {k: v for k, v in data.items() if k not in ("folders", "corpus")}
        if data.get("kind") == "folders":
            d["folders"] = [Path(f).name for f in data.get("folders", [])]
        else:
            d["corpus"] = Path(str(data.get("corpus") or corpus or "corpus")).name
        return d
    if corpus is None or not (corpus / "recipe.json").is_file():
        raise ExportError("this run records no data.json (it predates it): give --corpus, the corpus it trained on")
    recipe = json.loads((corpus / "recipe.json").read_text())
    return {"corpus": "audioemb Debian corpus (audioemb corpus build)",
            "recipe_version": recipe["recipe_version"], "manifest_sha256": recipe["manifest_sha256"],
            "train_hours": recipe["train_hours"], "train_clips": len(read_manifest(corpus, "train")),
            "packages": {k: v["version"] for k, v in recipe["packages"].items()},
            **({"licences": recipe["licences"]} if recipe.get("licences") else {})}


def _remove_stale(parent: Path, prefix: str) -> None:
    """Remove build folders of exports whose process is gone (killed mid-export)."""
    for p in parent.glob(f"{prefix}*"):
        try:
            pid = int(p.name.rsplit("-", 1)[1])
        except (ValueError, IndexError):
            pid = None  # the "-old" copy of a replaced folder: removed too
        if pid is None or not pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(out: Path):
    """Yield a build folder beside ``out``; on success it replaces ``out`` by renames, on any error or
    interruption it is removed and ``out`` is left as it was. Refuses to replace a folder that holds
    files but is not a model folder."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "config.json").is_file())):
        raise ExportError(f"{out}: exists and is not a model folder; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{out.name}.export-"
    _remove_stale(out.parent, prefix)
    tmp = out.parent / f"{prefix}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.parent / f"{prefix}{os.getpid()}-old"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def package_run(run_dir: Path, out: Path, corpus: Path | None = None, evaluate: bool = True, log=print,
                name: str | None = None, eval_data: Path | None = None, seeds: int | None = None) -> dict:
    """Export ``run_dir``'s encoder to the model folder ``out``, evaluate it and write its card.

    ``corpus``: score on its held-out tasks (default: the corpus a corpus run trained on, when it is still
    there); ``eval_data``: a labelled CSV or folder scored beside the starting model (of an ``--init`` run),
    random init and log-mel statistics. Refuses an unfinished run and a collapsed encoder.
    """
    from ..eval.export_eval import evaluate_export, open_eval_data, resolve_corpus

    run_dir = Path(run_dir)
    cfg, obj, info = load_run(run_dir)
    if info["step"] < cfg.steps:
        raise ExportError(f"{run_dir} stopped at step {info['step']} of {cfg.steps}; finish training first")
    rec = run_records(run_dir)
    eval_set = open_eval_data(eval_data, log) if eval_data is not None else None
    corpus = resolve_corpus(corpus, rec["data"], log)
    data_meta = _data_meta(corpus, rec["data"])
    model = AudioEmbedder(obj.frontend, obj.encoder).eval()
    waves = check_waves(corpus, list(eval_set.paths) if eval_set else [], rec["data"], model.sample_rate)
    cstd = _check_collapse(model, waves)
    own_data = rec["data"] is not None and rec["data"].get("kind") == "folders"
    corpus_tag = cfg.name.endswith((".debian", ".debian2"))  # a --data run never keeps the corpus's tag
    name = name or (Path(out).name if own_data and corpus_tag else cfg.name)
    curve = _loss_curve(run_dir)
    env = rec["env"]
    meta = {
        "name": name,
        "objective": {"name": cfg.objective, **cfg.objective_params},
        "training": {
            "command": _command(rec["command"]),
            "recipe": json.loads((run_dir / "config.json").read_text()),
            "steps": info["step"], "batch_size": cfg.batch_size, "crop_s": cfg.crop_s,
            "wall_time_s": round(info["wall_s"], 1),
            "hardware": (f"{env.get('device')}: {env.get('device_name')}; {env.get('machine')}" if env else
                         f"CPU, {cfg.threads} threads, {cfg.precision} (the run records no env.json)"),
            **({"env": env} if env else {}), **({"init": rec["init"]} if rec["init"] else {}),
            "torch": torch.__version__, "audioemb": __version__, "git_commit": _git_commit(),
            "date": dt.date.today().isoformat(), "data": data_meta,
            "loss_curve": [{"step": r["step"], "loss": round(r["loss"], 4),
                            "collapse_std": r.get("collapse_std")} for r in curve],
            "final_collapse_std_heldout": round(cstd, 4),
            "collapse_clips": waves_source(corpus, bool(eval_set)),
            "heldout_curve": _heldout_curve(run_dir),
        },
    }
    with atomic_folder(out) as tmp:
        config = save_model(model, tmp, meta, parity_waves(waves, model.min_samples))
        log(f"saved {out} (ONNX max abs diff {config['onnx']['max_abs_diff_vs_torch']:.2e})")
        if evaluate:
            config["metrics"] = evaluate_export(tmp, name, corpus, eval_set, rec["init"], run_dir, log, seeds)
            write_config(tmp, config)
        write_card(tmp, curve)
    return config


def package_concat(folders: list[Path], out: Path, name: str, corpus: Path, evaluate: bool = True,
                   log=print) -> dict:
    """One model folder whose encoder runs several shipped encoders and concatenates their frames
    (forward + backward APC). The parts must share the frontend and its normalisation statistics."""
    import shlex
    import sys

    from ..eval.export_eval import evaluate_export
    from ..modelfolder import open_folder
    from ..nn.encoders import ConcatEncoder
    from ..nn.export import load_module

    parts = [open_folder(f) for f in folders]
    for p in parts:
        if p.config.get("embedding_norm"):
            raise ExportError(f"{p.path} standardises its embedding; concatenate the folders it was made from")
    modules = [load_module(p) for p in parts]
    f0 = modules[0].frontend
    for p, m in zip(parts[1:], modules[1:]):
        if p.config["frontend"] != parts[0].config["frontend"] or not (
                torch.allclose(m.frontend.mean, f0.mean) and torch.allclose(m.frontend.std, f0.std)):
            raise ExportError(f"{p.path} has another frontend or normalisation statistics than {parts[0].path}")
    enc = ConcatEncoder([m.encoder.config() for m in modules])
    for part, m in zip(enc.parts, modules):
        part.load_state_dict(m.encoder.state_dict())
    model = AudioEmbedder(f0, enc).eval()
    waves = check_waves(corpus, [], None, model.sample_rate)
    cstd = _check_collapse(model, waves)
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
            "date": dt.date.today().isoformat(), "data": _data_meta(corpus, None),
            "final_collapse_std_heldout": round(cstd, 4),
        },
    }
    with atomic_folder(out) as tmp:
        config = save_model(model, tmp, meta, parity_waves(waves, model.min_samples))
        if evaluate:
            config["metrics"] = evaluate_export(tmp, name, corpus, None, None, None, log)
            write_config(tmp, config)
        write_card(tmp, [])
    return config
