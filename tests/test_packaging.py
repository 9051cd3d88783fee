"""The wheel carries the library, the CLI under the audioemb namespace, and the shipped models."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                        "-w", str(out), "-q"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {r.stderr[-500:]}")
    return zipfile.ZipFile(next(out.glob("audioemb-*.whl")))


def test_wheel_contents(wheel):
    names = set(wheel.namelist())
    assert "audioemb/cli/__init__.py" in names and "audioemb/cli/embed.py" in names
    assert not any(n.startswith("cli/") for n in names)  # no bare top-level cli package
    from audioemb.registry import DEFAULT_MODEL, list_models

    for model in list_models():
        for f in ("config.json", "model.onnx", "model.safetensors", "README.md"):
            assert f"audioemb/pretrained/{model}/{f}" in names, (model, f)
    assert f"audioemb/pretrained/{DEFAULT_MODEL}/model.onnx" in names
    assert any(n.startswith("audioemb/train/recipes/") and n.endswith(".json") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "audioemb = audioemb.cli:main" in wheel.read(entry).decode()
