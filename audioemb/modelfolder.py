"""A saved model is a self-describing folder: config.json, model.safetensors, model.onnx, README.md.

``config.json`` holds the frontend, encoder, objective, dimensions, sample rate, inference windowing,
provenance and the SHA-256 of every weight file. Loading checks those hashes, so a folder whose files
don't match its config is refused. Nothing is ever unpickled.

A model's *identity* (:func:`identity`) is the SHA-256 of the config fields that decide its embeddings
(``IDENTITY_KEYS``, weight hashes included); ``config.json`` records it as ``identity_sha256`` and loading
refuses a config whose fields no longer match it (an edited sample rate, dimension, encoder or name).
Descriptive fields (training provenance, metrics) may be updated without changing the identity. Indexes
and embedding folders record the identity, so they refuse another model's vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .fsio import atomic_write_json
from .model_config import ModelConfig, ModelFolderError

__all__ = ["ModelConfig", "ModelFolder", "ModelFolderError", "open_folder", "read_config", "read_model_config",
           "seal", "write_config"]

FORMAT = "audioemb-model"
FORMAT_VERSION = 1
WEIGHT_FILES = ("model.safetensors", "model.onnx")
IDENTITY_KEYS = ("name", "sample_rate", "embedding_dim", "frame_dim", "frame_hop", "n_layers", "frontend", "encoder",
                 "inference", "files")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelFolder:
    """A checked model folder: ``model_config`` is its typed config; ``config`` the raw JSON dict (kept for
    callers that still read keys)."""

    path: Path
    config: dict
    model_config: ModelConfig = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "model_config", ModelConfig.from_dict(self.config, str(self.path / "config.json")))

    @property
    def name(self) -> str:
        return self.model_config.name

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def identity(self) -> str:
        """SHA-256 of the fields that decide the embeddings (see the module docstring)."""
        return identity(self.config)


def identity(cfg: dict) -> str:
    """SHA-256 of a config's ``IDENTITY_KEYS`` (canonical JSON: sorted keys, no spaces)."""
    core = {k: cfg.get(k) for k in IDENTITY_KEYS}
    return hashlib.sha256(json.dumps(core, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_identity(cfg: dict, where: str | os.PathLike) -> None:
    """Refuse a config whose identity fields were edited after it was written (see the module docstring)."""
    want = cfg.get("identity_sha256")
    if want is None:
        warnings.warn(f"{where}: config.json records no identity_sha256 (written before audioemb checked it), so "
                      "edits to it cannot be detected; seal it with audioemb.modelfolder.seal()", stacklevel=3)
        return
    got = identity(cfg)
    if got != want:
        raise ModelFolderError(f"{where}: config.json was edited after the model was written: its "
                               f"{', '.join(IDENTITY_KEYS[:-1])} or weight hashes no longer match its identity_sha256 "
                               f"({got[:12]}... vs {str(want)[:12]}...); restore the original config.json")


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
    check_identity(cfg, cfg_path)  # first: an edited config is named as such
    ModelConfig.from_dict(cfg, str(cfg_path))  # types and ranges, checked once
    return cfg


def read_model_config(folder: str | os.PathLike) -> ModelConfig:
    """The typed config of a model folder (config.json checked as :func:`read_config` does)."""
    return ModelConfig.from_dict(read_config(Path(folder)), str(Path(folder) / "config.json"))


def open_folder(folder: str | os.PathLike, verify: tuple[str, ...] = WEIGHT_FILES) -> ModelFolder:
    """Read and check a model folder; ``verify`` names the files whose SHA-256 must match the config."""
    folder = Path(folder)
    cfg = read_config(folder)
    open_folder_files(folder, cfg, verify)
    return ModelFolder(folder, cfg)


def open_folder_files(folder: Path, cfg: dict, verify: tuple[str, ...]) -> None:
    """Check that the files ``verify`` exist and match the sha256 recorded in ``cfg``."""
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


def write_config(folder: Path, cfg: dict) -> None:
    """Write config.json atomically, recording the sha256 of the weight files present."""
    cfg = dict(cfg)
    cfg["format"], cfg["format_version"] = FORMAT, FORMAT_VERSION
    cfg["files"] = {n: sha256_file(folder / n) for n in WEIGHT_FILES if (folder / n).exists()}
    cfg["identity_sha256"] = identity(cfg)
    atomic_write_json(folder / "config.json", cfg)


def seal(folder: str | os.PathLike) -> str:
    """Record ``identity_sha256`` in an existing folder's config.json (after checking its weight hashes).

    For folders written before identities were recorded; only the one field is added. Returns the identity.
    """
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.pop("identity_sha256", None)
    open_folder_files(folder, cfg, WEIGHT_FILES)
    cfg["identity_sha256"] = identity(cfg)
    atomic_write_json(folder / "config.json", cfg)
    return cfg["identity_sha256"]
