"""Inference needs no torch; the CLI imports nothing heavy until a command runs."""

from __future__ import annotations

import json
import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_embed_and_encode_without_torch(tiny_model, clip_paths, tmp_path):
    code = f"""
import sys
sys.modules["torch"] = None          # any import of torch now fails
sys.modules["torchaudio"] = None
import audioemb
m = audioemb.load({str(tiny_model)!r})
e = m.encode({[str(p) for p in clip_paths]!r})
s = audioemb.embed_folder({str(clip_paths[0].parent)!r}, {str(tmp_path / 'out')!r}, m, progress=False)
print(e.shape, s.embedded, s.failed)
"""
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [f"({len(clip_paths)},", f"{m_dim(tiny_model)})", str(len(clip_paths)), "0"]


def m_dim(folder) -> int:
    return json.loads((folder / "config.json").read_text())["embedding_dim"]


def test_cli_import_is_light():
    r = _run("import sys, audioemb.cli; print(sorted(m for m in ('numpy', 'onnxruntime', 'torch', 'faiss', 'soundfile')"
             " if m in sys.modules))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_help_runs():
    r = subprocess.run([sys.executable, "-m", "audioemb", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "embed" in r.stdout
