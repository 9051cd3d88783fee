"""Model folders: config-only architecture, sha256 checks, name resolution that never falls back."""

from __future__ import annotations

import json
import shutil

import pytest

from audioemb.modelfolder import ModelFolderError, open_folder
from audioemb.registry import list_models, resolve
from audioemb.runtime import load


def test_tampered_weights_refused(tiny_model, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model, bad)
    with open(bad / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelFolderError, match="sha256"):
        load(bad)
    pytest.importorskip("torch")
    load(bad, backend="torch")  # the safetensors file is intact
    with open(bad / "model.safetensors", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelFolderError, match="sha256"):
        load(bad, backend="torch")


def test_missing_file_and_bad_config(tiny_model, tmp_path):
    a = tmp_path / "a"
    shutil.copytree(tiny_model, a)
    (a / "model.onnx").unlink()
    with pytest.raises(ModelFolderError, match="missing"):
        load(a)
    cfg = json.loads((tiny_model / "config.json").read_text())
    cfg["format"] = "something-else"
    b = tmp_path / "b"
    shutil.copytree(tiny_model, b)
    (b / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFolderError, match="not an audioemb model"):
        open_folder(b)


def test_architecture_comes_from_config_only(tiny_model):
    cfg = open_folder(tiny_model).config
    assert cfg["encoder"]["type"] == "audiontt" and cfg["files"].keys() == {"model.onnx", "model.safetensors"}


def test_name_resolution(tiny_model, tmp_path):
    assert resolve(f"local-dir:{tiny_model}") == tiny_model
    assert resolve(str(tiny_model)) == tiny_model
    with pytest.raises(ModelFolderError, match="no such model folder"):
        resolve(str(tmp_path / "does-not-exist"))
    with pytest.raises(ModelFolderError, match="no such model folder"):
        resolve("./byol-s.debian")  # looks like a path: never falls back to the shipped model
    with pytest.raises(ModelFolderError, match="unknown model"):
        resolve("nonexistent-model.tag")
    for name in list_models():
        assert resolve(name).name == name


def test_retired_name_names_its_replacement():
    """A name that was shipped once and replaced says what replaced it and that its embeddings need redoing,
    instead of 'unknown model'; every replacement is shipped or itself retired."""
    from audioemb.registry import RETIRED

    shipped = set(list_models())
    for old, (new, _) in RETIRED.items():
        assert old not in shipped
        assert new in shipped or new in RETIRED, new
    with pytest.raises(ModelFolderError, match=r"'simsiam-s.debian' was retired on 2026-11-29, replaced by "
                                               r"'simsiam-s.debian2'.*re-embed"):
        resolve("simsiam-s.debian")
