"""What a run trained on, where it ran and what it started from: ``data.json``, ``env.json``, ``init.json``.

Export reads these to write a truthful card (see ``/docs/architecture.md``). Starting weights for domain
adaptation (``--init MODEL``) come from a shipped model, a model folder or an ``hf-hub:`` model.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import replace
from pathlib import Path

import torch

from .config import TrainConfig
from .data import Pack, corpus_data_tag, load_pack, read_manifest
from .folders import DataError, file_list_sha256, folder_pack


def open_data(corpus: Path | None, folders: list[Path] | None, run_dir: Path, sample_rate: int,
              cache: Path | None = None, log=print) -> tuple[Pack, dict]:
    """The training pack and its ``data.json`` summary: the project corpus, or any folders of audio."""
    if folders:
        return folder_pack([Path(f) for f in folders], Path(cache or run_dir / "cache"), sample_rate, log=log)
    if corpus is None:
        raise DataError("give the training data: --data FOLDER (any audio) or --corpus CORPUS")
    corpus = Path(corpus)
    if not (corpus / "recipe.json").is_file():
        raise DataError(f"{corpus}: not a corpus built by `audioemb corpus build` (no recipe.json); "
                        "for a folder of your own audio use --data")
    rows = read_manifest(corpus, "train")
    pack = load_pack(corpus, "train", log=log, rows=rows)
    recipe = json.loads((corpus / "recipe.json").read_text())
    summary = {"kind": "corpus", "corpus": str(corpus.resolve()), "data_tag": corpus_data_tag(recipe),
               "recipe_version": recipe.get("recipe_version"), "manifest_sha256": recipe.get("manifest_sha256"),
               "files": len({r.get("orig", r["path"]) for r in rows}), "skipped": 0, "clips": len(pack),
               "hours": round(float(pack.lengths.sum()) / pack.sample_rate / 3600, 4),
               "file_list_sha256": file_list_sha256(pack.paths), "licences": recipe.get("licences", []),
               "packages": {k: v.get("version") for k, v in recipe.get("packages", {}).items()}}
    if recipe.get("subset"):  # e.g. the Opus-coded subset that travels to a lent GPU (benchmarks/gpu)
        summary["subset"] = recipe["subset"]
    return pack, summary


def check_resume(run_dir: Path, data_info: dict, init_info: dict | None) -> None:
    """Refuse to resume the run in ``run_dir`` on other data or from another ``--init`` model: its
    ``data.json`` and ``init.json`` describe the whole run, and the model card quotes them."""
    from .config import ConfigError

    def read(name: str) -> dict | None:
        try:
            return json.loads((run_dir / name).read_text())
        except FileNotFoundError:
            return None

    old = read("data.json")
    if old and old.get("file_list_sha256") and old["file_list_sha256"] != data_info.get("file_list_sha256"):
        raise ConfigError(f"{run_dir} was trained on other data ({old.get('files')} files then, "
                          f"{data_info.get('files')} now, and the file lists differ); resume it with the data it "
                          "started with, or use a new folder")
    if init_info is not None:
        prev = read("init.json")
        if prev is None or prev.get("sha256") != init_info.get("sha256"):
            start = "random weights" if prev is None else prev.get("model")
            raise ConfigError(f"{run_dir} started from {start}, not --init {init_info['model']}; a resumed run "
                              "keeps its start: drop --init, or use a new folder")


def env_info(device: str, world: int, cfg: TrainConfig, heap_kept: bool = False) -> dict:
    """The device and machine a run actually used."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    name = torch.cuda.get_device_name() if device == "cuda" else cpu
    return {"device": device, "device_name": name, "machine": f"{cpu}, {os.cpu_count()} cores",
            "world_size": world, "threads_per_process": cfg.threads, "precision": cfg.precision,
            "heap_kept": heap_kept, "torch": torch.__version__}


def apply_init(cfg: TrainConfig, init: str) -> tuple[TrainConfig, torch.nn.Module, dict]:
    """Load a model to continue from; its frontend and encoder settings replace the recipe's.

    Returns the updated config, the torch :class:`~audioemb.nn.model.AudioEmbedder` and ``init.json``.
    """
    from ..modelfolder import open_folder
    from ..nn.export import load_module
    from ..registry import resolve

    try:  # training needs the torch weights only, so a folder without model.onnx will do
        folder = open_folder(resolve(init), verify=("model.safetensors",))
    except Exception as e:  # unknown name, not a folder, corrupt folder, hub error
        raise DataError(f"--init {init}: {e}") from None
    module = load_module(folder)
    encoder = dict(folder.config["encoder"])
    info = {"model": init, "name": folder.model_config.name, "resolved": str(folder.path),
            "sha256": folder.model_config.files, "renormalised": False}
    if encoder.get("type") == "framenet" and encoder.pop("readout", "context") == "latents":
        # an inference readout: train the whole encoder (its context weights are in the folder), read out as usual
        from ..nn.model import AudioEmbedder

        trained, module = module, AudioEmbedder.from_config(folder.config["frontend"], encoder)
        module.load_state_dict(trained.state_dict())
        info["readout"] = "the folder reads out its conv latents; trained with the context readout"
    cfg = replace(cfg, encoder=encoder, frontend=dict(folder.config["frontend"]))
    return cfg, module, info
