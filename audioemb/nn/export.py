"""Saving a trained frontend + encoder as a model folder, exporting it to ONNX and checking parity.

Exporting pretrained weights (frontend statistics + encoder) is separate from training checkpoints:
the folder holds no projector, predictor, target network, queue or optimizer state.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save

from .. import __version__
from ..fsio import atomic_write
from ..modelfolder import ModelFolder, open_folder, write_config
from .model import AudioEmbedder

ONNX_OPSET = 18


def load_module(folder: ModelFolder | str | os.PathLike) -> AudioEmbedder:
    """Rebuild the torch module of a model folder from its config.json and model.safetensors."""
    if not isinstance(folder, ModelFolder):
        folder = open_folder(folder, verify=("model.safetensors",))
    cfg = folder.config
    model = AudioEmbedder.from_config(cfg["frontend"], cfg["encoder"], cfg.get("embedding_norm"))
    state = load_file(str(folder.file("model.safetensors")))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(("frontend.dft", "frontend.mel_fb"))]
    if missing or unexpected:
        raise ValueError(f"{folder.path}: weights do not fit the config (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")
    return model.eval()


def export_onnx(model: AudioEmbedder, path: Path, opset: int = ONNX_OPSET) -> str:
    """Export with dynamic batch and length: waveform (B, L) -> embedding, frames, layers.

    Uses the dynamo exporter; modules it cannot decompose (``nn.GRU``) fall back to the TorchScript
    exporter. Returns the exporter used.
    """
    import warnings

    model = model.eval()
    example = torch.randn(2, model.sample_rate, generator=torch.Generator().manual_seed(0)) * 0.1
    names = {"input_names": ["waveform"], "output_names": ["embedding", "frames", "layers"]}
    used = []

    def write(tmp: Path) -> None:
        try:
            batch, length = torch.export.Dim("batch", min=1), torch.export.Dim("samples", min=model.min_samples)
            torch.onnx.export(model, (example,), str(tmp), **names, dynamic_shapes={"wav": {0: batch, 1: length}},
                              opset_version=opset, dynamo=True, external_data=False, optimize=True, verbose=False)
            used.append("dynamo")
        except Exception:
            axes = {"waveform": {0: "batch", 1: "samples"}, "embedding": {0: "batch"},
                    "frames": {0: "batch", 1: "frames"}, "layers": {1: "batch", 2: "frames"}}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (example,), str(tmp), **names, dynamic_axes=axes, opset_version=opset,
                                  dynamo=False)
            used.append("torchscript")

    atomic_write(path, write)
    return used[-1]


def onnx_parity_report(model: AudioEmbedder, onnx_path: Path, waves: list[np.ndarray]) -> dict[str, float]:
    """torch against onnxruntime over ``waves``: ``abs`` (max abs difference, embedding and frames),
    ``embedding_abs`` (the embedding's max abs difference over its L2 norm: the difference in the unit vector
    that ``encode`` returns, whatever the raw embedding's scale) and ``rel`` (each output's max abs difference
    over its own max magnitude, at least 1: frames are not normalised, and a transformer's reach magnitudes
    where float32 reordering alone moves them by more than 1e-4). A standardised embedding's difference is
    taken in its units before standardisation (times each dimension's std): dividing by a small std would
    otherwise magnify float32 rounding, while the standardisation itself is one exact affine op in both."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = {"abs": 0.0, "embedding_abs": 0.0, "rel": 0.0}
    unit = model.embed_norm.std.numpy() if model.embed_norm is not None else 1.0
    with torch.inference_mode():
        for w in waves:
            x = np.asarray(w, dtype=np.float32)[None]
            e, f, _ = model(torch.from_numpy(x))
            oe, of = sess.run(["embedding", "frames"], {"waveform": x})
            for name, o, t in (("embedding", oe * unit, e.numpy() * unit), ("frames", of, f.numpy())):
                row_d = np.abs(o - t).max(axis=-1)
                d = float(row_d.max())
                out["abs"] = max(out["abs"], d)
                out["rel"] = max(out["rel"], d / max(1.0, float(np.abs(t).max())))
                if name == "embedding":  # as encode() returns it: L2-normalised
                    unit_d = row_d / np.maximum(np.linalg.norm(t, axis=-1), 1e-12)
                    out["embedding_abs"] = max(out["embedding_abs"], float(unit_d.max()))
    return out


def onnx_parity(model: AudioEmbedder, onnx_path: Path, waves: list[np.ndarray]) -> float:
    """Max abs difference between torch and onnxruntime outputs (embedding, frames) over ``waves``."""
    return onnx_parity_report(model, onnx_path, waves)["abs"]


def parity_ok(report: dict[str, float], tol: float = 1e-4) -> bool:
    """The export's check: the embedding as ``encode`` returns it (L2-normalised) within ``tol`` absolute,
    every output within ``tol`` of its own scale."""
    return report["embedding_abs"] <= tol and report["rel"] <= tol


def _weights_file(state: dict, keep: Path | None) -> bytes:
    """The safetensors bytes of ``state``: ``keep``'s own bytes when that file holds exactly these tensors.
    safetensors writes its metadata from a hash map, so saving equal weights again can give other bytes (and
    another sha256) from one process to the next; a re-export that keeps the weights keeps the file."""
    if keep is not None:
        import torch
        from safetensors.torch import load_file

        old = load_file(keep)
        if old.keys() == state.keys() and all(old[k].dtype == v.dtype and torch.equal(old[k], v)
                                              for k, v in state.items()):
            return Path(keep).read_bytes()
    return save(state, metadata={"format": "pt", "audioemb": __version__})


def save_model(model: AudioEmbedder, folder: Path, meta: dict, parity_waves: list[np.ndarray],
               keep_weights: Path | None = None) -> dict:
    """Write ``folder``: model.safetensors, model.onnx (checked against torch), config.json.

    ``meta`` adds name, objective, training provenance and inference settings to the config, and
    ``embedding_norm`` (how its statistics were fitted) when the model standardises its embedding. With
    ``keep_weights`` (the source folder's model.safetensors, for a re-export) that file is copied unchanged
    when it holds exactly the model's weights. Returns the config written. Raises unless :func:`parity_ok`.
    """
    if (model.embed_norm is None) != (not meta.get("embedding_norm")):
        raise ValueError("meta['embedding_norm'] must describe the model's embedding standardiser, and only then")
    folder.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write(folder / "model.safetensors", _weights_file(state, keep_weights))
    exporter = export_onnx(model, folder / "model.onnx")
    report = onnx_parity_report(model, folder / "model.onnx", parity_waves)
    diff = report["abs"]
    if not parity_ok(report):
        raise RuntimeError(f"ONNX and torch outputs differ: embedding by {report['embedding_abs']:.2e}, "
                           f"{report['rel']:.2e} of an output's scale (limit 1e-4 for each)")
    enc = model.encoder
    used, stored = enc.inference_parameters(), sum(p.numel() for p in enc.parameters())
    cfg = {
        "name": meta["name"],
        "sample_rate": model.sample_rate,
        "embedding_dim": enc.embedding_dim,
        "frame_dim": enc.frame_dim,
        "frame_hop": enc.frame_hop,
        "frame_rate_hz": model.sample_rate / (model.frontend.cfg.hop_length * enc.frame_hop),
        "n_layers": enc.n_layers,
        "parameters": used,
        **({"stored_parameters": stored} if stored != used else {}),  # a readout that leaves weights unrun
        "frontend": model.frontend.cfg.to_dict(),
        "encoder": enc.config(),
        "inference": {"window_s": 10.0, "min_s": 0.25, **meta.get("inference", {}),
                      "pooling": "window: concat(mean, max) over frames" + (
                          ", standardised per dimension (embedding_norm)" if meta.get("embedding_norm") else "")
                      + "; clip: duration-weighted mean of windows"},
        **({"embedding_norm": meta["embedding_norm"]} if meta.get("embedding_norm") else {}),
        "objective": meta.get("objective", {}),
        "training": meta.get("training", {}),
        "metrics": meta.get("metrics", {}),
        "onnx": {"opset": ONNX_OPSET, "exporter": exporter, "max_abs_diff_vs_torch": diff,
                 "max_rel_diff_vs_torch": report["rel"], "embedding_max_abs_diff_vs_torch": report["embedding_abs"],
                 "inputs": {"waveform": "float32 (batch, samples) mono at sample_rate"},
                 "outputs": {"embedding": "(batch, embedding_dim)", "frames": "(batch, frames, frame_dim)",
                             "layers": "(n_layers, batch, frames, frame_dim)"}},
        "audioemb_version": __version__,
    }
    write_config(folder, cfg)
    return json.loads((folder / "config.json").read_text())
