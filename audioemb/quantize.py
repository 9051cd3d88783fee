"""Smaller model variants: int8 (onnxruntime dynamic quantization) or fp16 weights, measured against the float model.

``quantize_model("npc-s.debian", "out/npc-s.debian-int8", "int8")`` writes a model folder whose ``model.onnx``
is the variant (``model.safetensors`` stays the float weights, for the torch backend) and records in its
config and card, measured in the same run:

- parity: cosine similarity and max abs difference of clip embeddings against the float model, on real clips;
- speed: clips per second of both models on the same batches (same threads), and the file size;
- quality (with a corpus): linear-probe accuracy and kNN precision@10 of both on the corpus's held-out tasks.

int8 uses ``onnxruntime.quantization.quantize_dynamic`` (weights int8, activations quantized per batch at run
time) on the encoder's MatMul, Gemm and recurrent layers; convolutions only with ``conv=True`` (onnxruntime's
CPU ConvInteger made byol-s.debian 4-6x slower). The log-mel frontend (every node feeding the ``Log``) always
stays float: its DFT and mel weights are not where the size is. fp16 converts the rest of the graph's weights
and compute to float16 with float32 inputs and outputs (``onnxruntime.transformers.float16``). Its frontend
stays float32 too, weights and values (the converter's float16 round trips between kept nodes are removed):
nearly all of the fp16 rounding error was there (lowest cosine to the float model on the example clips
0.9986 -> 1.0000 for ``npc-s.debian``, 0.985 -> 0.99999 for ``temporal_order-s.debian``), for 0.35 MB more.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import AudioembError
from .fsio import atomic_write
from .modelfolder import WEIGHT_FILES, open_folder, write_config
from .registry import command_ref, resolve

KINDS = ("int8", "fp16")


class QuantizeError(AudioembError):
    """A variant that cannot be written: unknown kind, missing onnx package, or an output folder in the way."""


def frontend_nodes(model) -> list[str]:
    """Names of the nodes that compute the log-mel frontend: every ancestor of the graph's ``Log`` node."""
    producer = {o: n for n in model.graph.node for o in n.output}
    logs = [n for n in model.graph.node if n.op_type == "Log"]
    seen: dict[str, object] = {}
    todo = list(logs)
    while todo:
        n = todo.pop()
        if n.name in seen:
            continue
        seen[n.name] = n
        todo += [producer[i] for i in n.input if i in producer]
    return sorted(seen)


def drop_round_trips(model, kept: set[str]) -> int:
    """Remove the float32 -> float16 -> float32 Cast pairs that ``convert_float_to_float16`` puts on the edges
    into and between the ``kept`` (float32) nodes, so values stay float32 there; returns how many. Only pairs
    whose source is a float32 graph input, initializer or kept node's output are bypassed."""
    from onnx import TensorProto

    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    floats = {i.name for i in g.input if i.type.tensor_type.elem_type == TensorProto.FLOAT}
    floats |= {t.name for t in g.initializer if t.data_type == TensorProto.FLOAT}
    floats |= {o for n in g.node if n.name in kept for o in n.output}

    def cast_to(n) -> int | None:
        return next((a.i for a in n.attribute if a.name == "to"), None) if n.op_type == "Cast" else None

    bypass = {}
    for n in g.node:
        inner = producer.get(n.input[0]) if cast_to(n) == TensorProto.FLOAT else None
        if inner is not None and cast_to(inner) == TensorProto.FLOAT16 and inner.input[0] in floats:
            bypass[n.output[0]] = inner.input[0]
    for n in g.node:
        for k, name in enumerate(n.input):
            if name in bypass:
                n.input[k] = bypass[name]
    outputs = {o.name for o in g.output}
    while True:  # the Casts nothing reads any more
        used = {i for n in g.node for i in n.input} | outputs
        dead = [n for n in g.node if n.op_type == "Cast" and not set(n.output) & used]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    sort_nodes(model)
    return len(bypass)


def sort_nodes(model) -> None:
    """Put the graph's nodes in topological order (the converter appends the Casts it inserts at the end,
    which onnxruntime accepts but ``onnx.checker`` and other tools refuse); the order is otherwise kept."""
    g = model.graph
    have = {i.name for i in g.input} | {t.name for t in g.initializer} | {""}
    todo, done = list(g.node), []
    while todo:
        ready = [n for n in todo if all(i in have for i in n.input)]
        if not ready:
            raise QuantizeError("the converted graph has a cycle or an input nothing produces")
        for n in ready:
            have.update(n.output)
        done += ready
        taken = {id(n) for n in ready}
        todo = [n for n in todo if id(n) not in taken]
    g.ClearField("node")
    g.node.extend(done)


def write_variant_onnx(src: Path, dst: Path, kind: str, conv: bool = False) -> dict:
    """Write the ``kind`` variant of the ONNX file ``src`` to ``dst``; returns what was done. With ``conv``,
    int8 also quantizes convolutions (smaller, but onnxruntime's CPU ConvInteger is several times slower)."""
    try:
        import onnx
    except ImportError:
        raise QuantizeError("quantizing needs the onnx package: pip install 'audioemb[quantize]'") from None
    if kind not in KINDS:
        raise QuantizeError(f"--to must be one of {', '.join(KINDS)}; got {kind!r}")
    graph = onnx.load(str(src))
    keep = frontend_nodes(graph)
    if kind == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        inits = {t.name for t in graph.graph.initializer}
        # weights computed in the graph (weight norm, tied weights) cannot be quantized statically: keep those float
        keep += [n.name for n in graph.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")
                 and len(n.input) > 1 and n.input[1] not in inits and n.name not in keep]
        with tempfile.TemporaryDirectory() as tmp:  # quantize_dynamic writes helper files beside its output
            out = Path(tmp) / "model.onnx"
            ops = ["MatMul", "Gemm", "GRU", "LSTM", "Attention"] + (["Conv"] if conv else [])
            quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, nodes_to_exclude=keep,
                             op_types_to_quantize=ops)
            done = {n.op_type for n in onnx.load(str(out)).graph.node} & {"MatMulInteger", "ConvInteger",
                                                                             "DynamicQuantizeLSTM", "QAttention"}
            if not done:
                raise QuantizeError(f"{src}: no {', '.join(ops)} weights outside the log-mel frontend to quantize"
                                    + ("" if conv else "; --conv quantizes the convolutions"))
            atomic_write(dst, out.read_bytes())
        return {"method": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8", "op_types": ops,
                "float_nodes": len(keep), "note": "log-mel frontend kept in float32"
                + ("" if conv else "; convolutions kept in float32 (--conv quantizes them too)")}
    from onnxruntime.transformers.float16 import convert_float_to_float16

    m = convert_float_to_float16(graph, keep_io_types=True, node_block_list=keep or None)
    drop_round_trips(m, set(keep))
    atomic_write(dst, lambda tmp: onnx.save(m, str(tmp)))
    return {"method": "onnxruntime.transformers.float16.convert_float_to_float16", "keep_io_types": True,
            "float_nodes": len(keep), "note": "log-mel frontend kept in float32 (weights and values)"}


def _clips(clips: Path | None) -> list[Path]:
    from .audio import find_audio

    folder = Path(clips) if clips else Path(__file__).resolve().parents[1] / "examples" / "clips"
    paths = find_audio(folder) if folder.exists() else []
    if not paths:
        raise QuantizeError(f"{folder}: no audio to measure parity on; pass --clips FOLDER")
    return paths


def _speed(model, batches: list[np.ndarray], repeat: int = 3) -> float:
    """Clips per second of ``model``'s backend over ``batches`` (best of ``repeat`` after a warm-up)."""
    model.backend.run(batches[0])
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for b in batches:
            model.backend.run(b)
        best = min(best, time.perf_counter() - t)
    return sum(len(b) for b in batches) / best


def measure(float_model, variant, clips: list[Path], repeat: int = 3) -> dict:
    """Parity on ``clips`` and speed on fixed random batches (1 s x 32 and 10 s x 8, best of ``repeat``)."""
    a, b = float_model.encode([str(p) for p in clips]), variant.encode([str(p) for p in clips])
    cos = np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    sr = float_model.sample_rate
    rng = np.random.default_rng(0)
    batches = [(0.1 * rng.standard_normal((32, sr))).astype(np.float32),
               (0.1 * rng.standard_normal((8, 10 * sr))).astype(np.float32)]
    f_speed, v_speed = _speed(float_model, batches, repeat), _speed(variant, batches, repeat)
    return {"parity": {"clips": len(clips), "cosine_min": round(float(cos.min()), 5),
                       "cosine_mean": round(float(cos.mean()), 5), "max_abs_diff": float(np.abs(a - b).max())},
            "speed": {"float_clips_per_s": round(f_speed, 1), "variant_clips_per_s": round(v_speed, 1),
                      "speedup": round(v_speed / f_speed, 3), "batches": "32 x 1 s + 8 x 10 s, noise",
                      "repeat": repeat, "threads": "onnxruntime default"}}


def quality(float_model, variant, corpus: Path, tasks: list[str] | None = None,
            log: Callable[[str], None] = print) -> dict:
    """Linear-probe accuracy and kNN precision@10 of both models on the held-out tasks of ``corpus`` (those
    named in ``tasks``, default all)."""
    from .eval.run import corpus_tasks, score

    out = {}
    for ds in corpus_tasks(corpus):
        if tasks and ds.name not in tasks:
            continue
        row = {}
        for tag, m in (("float", float_model), ("variant", variant)):
            s = score(m.encode(list(ds.paths)), ds)
            row[tag] = {"probe_acc": s["probe_acc"], "knn_p10": s["knn_p10"]}
        row["probe_acc_change"] = round(row["variant"]["probe_acc"] - row["float"]["probe_acc"], 4)
        out[ds.name] = row
        log(f"  {ds.name}: probe {row['float']['probe_acc']:.3f} -> {row['variant']['probe_acc']:.3f}")
    return out


def quantize_model(model: str | os.PathLike, out: str | os.PathLike, kind: str = "int8",
                   clips: str | os.PathLike | None = None, corpus: str | os.PathLike | None = None,
                   conv: bool = False, repeat: int = 3, tasks: list[str] | None = None,
                   log: Callable[[str], None] = print) -> dict:
    """Write the ``kind`` variant of a model folder to ``out`` with its measured cost; returns its config.
    ``conv``: int8 quantizes convolutions too (see :func:`write_variant_onnx`); speeds are the best of
    ``repeat`` timed passes; ``tasks`` limits the corpus's held-out tasks scored."""
    from .card import render_card
    from .runtime import load

    if kind not in KINDS:
        raise QuantizeError(f"--to must be one of {', '.join(KINDS)}; got {kind!r}")
    if corpus is not None and not sorted((Path(corpus) / "tasks").glob("*.csv")):  # before any work
        raise QuantizeError(f"--corpus {corpus}: not a corpus built by `audioemb corpus build` (no tasks/*.csv)")
    src = open_folder(resolve(model))
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise QuantizeError(f"{out} exists and is not empty; choose another output folder")
    out.mkdir(parents=True, exist_ok=True)
    try:
        log(f"{src.name}: writing the {kind} variant")
        how = write_variant_onnx(src.file("model.onnx"), out / "model.onnx", kind, conv=conv)
        for name in {*WEIGHT_FILES, "loss.png"} - {"model.onnx"}:
            if src.file(name).is_file():
                shutil.copy2(src.file(name), out / name)
        cfg = json.loads(json.dumps(src.config))
        cfg["name"] = f"{src.name}-{kind}"
        cfg.pop("metrics", None)  # the float model's held-out figures are not this variant's: see quality below
        cfg["onnx"].pop("max_abs_diff_vs_torch", None)  # the float graph's figure; the variant's parity is below
        cfg["quantization"] = {"kind": kind, "from": src.name, "from_sha256": src.model_config.files["model.onnx"],
                               **how}
        write_config(out, cfg)
        float_model, variant = load(src.path), load(out)
        log("measuring parity and speed against the float model")
        q = cfg["quantization"]
        q.update(measure(float_model, variant, _clips(Path(clips) if clips else None), repeat))
        q["size_mb"] = round((out / "model.onnx").stat().st_size / 1e6, 3)
        q["float_size_mb"] = round(src.file("model.onnx").stat().st_size / 1e6, 3)
        q["size_ratio"] = round(q["size_mb"] / q["float_size_mb"], 3)
        if corpus is not None:
            log("scoring both on the corpus's held-out tasks")
            q["quality"] = quality(float_model, variant, Path(corpus), tasks, log)
        write_config(out, cfg)
        atomic_write(out / "README.md", render_card(cfg) + _variant_section(cfg))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return cfg


def _variant_section(cfg: dict) -> str:
    """The card section of the variant's measured cost."""
    q = cfg["quantization"]
    p, s = q["parity"], q["speed"]
    lines = ["", f"## {q['kind']} variant of {q['from']}", "",
             f"Written by `audioemb quantize {command_ref(q['from'])} -o OUT --to {q['kind']}` ({q['method']}"
             + (f"; {q['note']}" if q.get("note") else "") + ").", "",
             "| measure | float | this variant |", "|---|---|---|",
             f"| model.onnx size (MB) | {q['float_size_mb']:.2f} | {q['size_mb']:.2f} ({q['size_ratio']:.2f}x) |",
             f"| clips/s ({s['batches']}) | {s['float_clips_per_s']} | {s['variant_clips_per_s']} "
             f"({s['speedup']:.2f}x) |",
             f"| cosine to float on {p['clips']} clips (min / mean) | 1 | {p['cosine_min']:.4f} / "
             f"{p['cosine_mean']:.4f} |"]
    for task, r in (q.get("quality") or {}).items():
        lines.append(f"| {task}: probe accuracy · kNN@10 | {r['float']['probe_acc']:.3f} · {r['float']['knn_p10']:.3f}"
                     f" | {r['variant']['probe_acc']:.3f} · {r['variant']['knn_p10']:.3f} |")
    return "\n".join(lines) + "\n"
