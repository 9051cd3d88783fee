"""A saved model is a self-describing folder: config.json, model.safetensors, model.onnx, README.md.

``config.json`` holds the frontend, encoder, objective, dimensions, sample rate, inference windowing,
provenance and the SHA-256 of every weight file. Loading checks those hashes, so a folder whose files
don't match its config is refused. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

FORMAT = "audioemb-model"
FORMAT_VERSION = 1
WEIGHT_FILES = ("model.safetensors", "model.onnx")


class ModelFolderError(Exception):
    """A model folder that is missing files, or whose files don't match its config."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelFolder:
    path: Path
    config: dict

    @property
    def name(self) -> str:
        return self.config["name"]

    def file(self, name: str) -> Path:
        return self.path / name


def read_config(folder: Path) -> dict:
    cfg_path = Path(folder) / "config.json"
    if not cfg_path.is_file():
        raise ModelFolderError(f"{folder}: no config.json; not an audioemb model folder")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ModelFolderError(f"{cfg_path}: invalid JSON ({e})") from None
    if cfg.get("format") != FORMAT:
        raise ModelFolderError(f"{cfg_path}: not an audioemb model config (format={cfg.get('format')!r})")
    if int(cfg.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFolderError(f"{cfg_path}: format version {cfg['format_version']} is newer than this "
                               f"audioemb understands ({FORMAT_VERSION}); upgrade audioemb")
    for key in ("name", "sample_rate", "embedding_dim", "frontend", "encoder", "files"):
        if key not in cfg:
            raise ModelFolderError(f"{cfg_path}: missing required key {key!r}")
    return cfg


def open_folder(folder: str | os.PathLike, verify: tuple[str, ...] = WEIGHT_FILES) -> ModelFolder:
    """Read and check a model folder; ``verify`` names the files whose SHA-256 must match the config."""
    folder = Path(folder)
    cfg = read_config(folder)
    for name in verify:
        p = folder / name
        want = cfg["files"].get(name)
        if want is None:
            raise ModelFolderError(f"{folder}: config.json records no sha256 for {name}")
        if not p.is_file():
            raise ModelFolderError(f"{folder}: {name} is missing")
        got = sha256_file(p)
        if got != want:
            raise ModelFolderError(f"{p}: sha256 {got[:12]}... does not match config.json ({want[:12]}...); "
                                   "the folder was modified or is corrupt")
    return ModelFolder(folder, cfg)


def write_config(folder: Path, cfg: dict) -> None:
    """Write config.json atomically, recording the sha256 of the weight files present."""
    cfg = dict(cfg)
    cfg["format"], cfg["format_version"] = FORMAT, FORMAT_VERSION
    cfg["files"] = {n: sha256_file(folder / n) for n in WEIGHT_FILES if (folder / n).exists()}
    tmp = folder / "config.json.tmp"
    tmp.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, folder / "config.json")
