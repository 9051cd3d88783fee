"""Runtimes that map a batch of equal-length waveforms to (embedding, frames, layers).

:class:`OnnxBackend` needs only onnxruntime and numpy; it uses the CUDA provider when
onnxruntime-gpu and a GPU are present. :class:`TorchBackend` rebuilds the module from config.json and
model.safetensors (needs the [train] extra).
"""

from __future__ import annotations

import functools

import numpy as np

from .modelfolder import ModelFolder

# The CUDA provider runs float32 convolutions and matrix products in TF32 by default: on an H100 that put
# byol-s.debian's embeddings up to 0.0095 from the CPU provider's; with TF32 off, 1.1e-6, for about 20 % fewer
# clips/s (docs/gpu.md). Embeddings that depend on the device would break indexes built on the other one.
CUDA_OPTIONS = {"use_tf32": "0"}


class OnnxBackend:
    name = "onnx"

    def __init__(self, folder: ModelFolder, threads: int | None = None, providers: list[str] | None = None,
                 device: str = "auto"):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        if providers is None:
            providers = onnx_providers(device, ort.get_available_providers())
        if "CUDAExecutionProvider" in providers:
            _preload_cuda(ort)
        providers = [(p, CUDA_OPTIONS) if p == "CUDAExecutionProvider" else p for p in providers]
        self.session = ort.InferenceSession(str(folder.file("model.onnx")), so, providers=providers)
        self.providers = self.session.get_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in self.providers:
            from .errors import AudioembError

            raise AudioembError("device 'cuda': onnxruntime-gpu is installed but its CUDA provider did not load "
                                "(onnxruntime fell back to the CPU). It needs the CUDA and cuDNN libraries of its "
                                "build (for example the nvidia-* wheels that torch with CUDA installs) and a GPU; "
                                "use --device cpu or auto to run on the CPU")

    def run(self, wav: np.ndarray, layers: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        names = ["embedding", "frames", "layers"] if layers else ["embedding", "frames"]
        out = self.session.run(names, {"waveform": np.ascontiguousarray(wav, dtype=np.float32)})
        return out[0], out[1], (out[2] if layers else None)


@functools.cache
def _preload_cuda(ort) -> None:
    """Load the CUDA and cuDNN libraries from the nvidia-* pip packages (those torch installs), where
    onnxruntime-gpu would not find them on the library path. Silent: onnxruntime prints its own warnings."""
    import contextlib
    import io

    if hasattr(ort, "preload_dlls"):  # onnxruntime >= 1.21
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
            ort.preload_dlls()


def onnx_providers(device: str, available: list[str]) -> list[str]:
    """onnxruntime providers for ``device``: "cpu", "cuda" (an error without onnxruntime-gpu) or "auto"."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            from .errors import MissingExtraError

            raise MissingExtraError(f"device 'cuda' (this onnxruntime offers {', '.join(available)})",
                                    "onnxruntime-gpu and a CUDA GPU", "gpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device != "auto":
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class TorchBackend:
    name = "torch"

    def __init__(self, folder: ModelFolder, threads: int | None = None, device: str = "cpu"):
        import torch

        from .nn.export import load_module

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.module = load_module(folder).to(device).eval()

    def run(self, wav: np.ndarray, layers: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        # cuDNN runs float32 convolutions in TF32 by default: on an H200 that moved embeddings by up to 0.014
        # from onnxruntime on the CPU (docs/gpu.md), so the reference backend keeps full float32
        with self.torch.inference_mode(), self.torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            e, f, h = self.module(self.torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).to(self.device))
        return e.cpu().numpy(), f.cpu().numpy(), (h.cpu().numpy() if layers else None)
