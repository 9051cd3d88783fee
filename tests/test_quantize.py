"""``audioemb quantize``: int8 and fp16 variants of shipped models, with their measured cost."""

from __future__ import annotations

import json

import numpy as np
import pytest
from audioemb.cli import app
from typer.testing import CliRunner

from audioemb.quantize import QuantizeError, frontend_nodes, quantize_model, write_variant_onnx
from audioemb.registry import pretrained_dir
from audioemb.runtime import load

onnx = pytest.importorskip("onnx")
runner = CliRunner()


def test_int8_variant_of_a_cnn(tmp_path, clip_paths):
    cfg = quantize_model("byol-s.debian2", tmp_path / "q", "int8", repeat=1, log=lambda _: None)
    q = cfg["quantization"]
    assert cfg["name"] == "byol-s.debian2-int8" and q["kind"] == "int8" and q["from"] == "byol-s.debian2"
    assert q["size_ratio"] < 0.8 and q["parity"]["clips"] == len(clip_paths) and "Conv" not in q["op_types"]
    assert 0.99 < q["parity"]["cosine_min"] < 1.0  # quantized: close to the float model, not identical
    assert q["speed"]["float_clips_per_s"] > 0 and q["speed"]["variant_clips_per_s"] > 0
    m, f = load(tmp_path / "q"), load("byol-s.debian2")
    a, b = m.encode([str(p) for p in clip_paths]), f.encode([str(p) for p in clip_paths])
    assert np.sum(a * b, axis=1).min() == pytest.approx(q["parity"]["cosine_min"], abs=1e-4)
    graph = onnx.load(str(tmp_path / "q" / "model.onnx"))
    ops = {n.op_type for n in graph.graph.node}
    assert "MatMulInteger" in ops and "ConvInteger" not in ops  # really quantized, convolutions left float
    write_variant_onnx(pretrained_dir() / "byol-s.debian2" / "model.onnx", tmp_path / "c.onnx", "int8", conv=True)
    assert "ConvInteger" in {n.op_type for n in onnx.load(str(tmp_path / "c.onnx")).graph.node}
    kept = set(frontend_nodes(onnx.load(str(pretrained_dir() / "byol-s.debian2" / "model.onnx"))))
    assert kept and kept <= {n.name for n in graph.graph.node}  # the log-mel frontend stays float
    card = (tmp_path / "q" / "README.md").read_text()
    assert "## int8 variant of byol-s.debian2" in card and "cosine to float" in card
    assert "Written by `audioemb quantize byol-s.debian2 -o OUT --to int8`" in card  # a shipped model: its name
    # regression: the variant's card quoted the float graph's difference to torch as its own
    assert "max abs difference to torch" not in card and "parity with the float model is in the variant" in card
    from audioemb.registry import command_ref

    assert command_ref("byol-s.mysounds") == "path/to/byol-s.mysounds"  # a user's model: its folder
    saved = json.loads((tmp_path / "q" / "config.json").read_text())
    assert saved["quantization"]["parity"] == q["parity"] and "metrics" not in saved


def test_fp16_variant_and_cli(tmp_path):
    r = runner.invoke(app, ["quantize", "npc-s.debian", "-o", str(tmp_path / "h"), "--to", "fp16"])
    assert r.exit_code == 0, r.output
    assert "npc-s.debian-fp16" in r.output and "cosine to float" in r.output
    q = json.loads((tmp_path / "h" / "config.json").read_text())["quantization"]
    assert q["size_ratio"] < 0.7 and q["parity"]["cosine_min"] > 0.9999  # was 0.9986 with the frontend in fp16
    graph = onnx.load(str(tmp_path / "h" / "model.onnx"))
    onnx.checker.check_model(graph)  # valid ONNX: nodes in topological order (the converter appends its Casts)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
    front = set(frontend_nodes(graph))  # the log-mel frontend stays float32 (regression: it was fp16)
    assert q["float_nodes"] > 0 and not any(n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT16
                                            for n in graph.graph.node if n.name in front)
    assert load(tmp_path / "h").encode(np.zeros(16000, np.float32)).dtype == np.float32
    r = runner.invoke(app, ["quantize", "npc-s.debian", "-o", str(tmp_path / "h"), "--to", "fp16"])
    assert r.exit_code == 2 and "not empty" in r.output
    r = runner.invoke(app, ["quantize", "npc-s.debian", "-o", str(tmp_path / "x"), "--to", "int4"])
    assert r.exit_code == 2 and "int8, fp16" in r.output and not (tmp_path / "x").exists()
    r = runner.invoke(app, ["quantize", "npc-s.debian", "-o", str(tmp_path / "n"), "--to", "int8"])
    assert r.exit_code == 2 and "--conv quantizes the convolutions" in r.output  # its encoder is all convolutions
    assert not (tmp_path / "n").exists()
    with pytest.raises(QuantizeError, match="no audio"):
        quantize_model("npc-s.debian", tmp_path / "y", "fp16", clips=tmp_path / "empty", log=lambda _: None)
    assert not (tmp_path / "y").exists()  # nothing half-written is left
