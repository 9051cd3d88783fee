"""Choosing onnxruntime providers for a device."""

from __future__ import annotations

import pytest

from audioemb.backends import onnx_providers

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


def test_device_picks_providers():
    assert onnx_providers("cpu", [CUDA, CPU]) == [CPU]
    assert onnx_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert onnx_providers("auto", [CPU]) == [CPU]
    assert onnx_providers("cuda", [CUDA, CPU]) == [CUDA, CPU]


def test_cuda_without_onnxruntime_gpu_says_which_extra():
    with pytest.raises(ImportError, match=r"audioemb\[gpu\]"):
        onnx_providers("cuda", [CPU])
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        onnx_providers("tpu", [CPU])


def test_load_on_cpu_device(tiny_model, clips16k):
    from audioemb.runtime import load

    m = load(tiny_model, device="cpu")
    assert m.encode(clips16k[0], sample_rate=16000).shape == (m.embedding_dim,)


def test_cuda_provider_matches_cpu(tiny_model, clips16k):
    """Runs where onnxruntime-gpu sees a GPU (the [gpu] extra on a CUDA machine); skipped elsewhere."""
    import numpy as np
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no CUDAExecutionProvider here")
    from audioemb.runtime import load

    cpu, gpu = load(tiny_model, device="cpu"), load(tiny_model, device="cuda")
    np.testing.assert_allclose(gpu.encode(clips16k, sample_rate=16000), cpu.encode(clips16k, sample_rate=16000),
                               atol=1e-4)


@pytest.mark.parametrize("cmd", [["embed", "{clips}", "-o", "{tmp}/out"],
                                 ["index", "build", "{clips}", "-o", "{tmp}/i"]])
def test_cli_device_cuda_without_gpu_is_one_line(cmd, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a GPU provider is present")
    clips = Path(__file__).resolve().parents[1] / "examples" / "clips"
    args = [a.format(clips=clips, tmp=tmp_path) for a in cmd]
    r = subprocess.run([sys.executable, "-m", "audioemb", *args, "--device", "cuda"], capture_output=True, text=True)
    assert r.returncode == 2 and "audioemb[gpu]" in r.stderr and "Traceback" not in r.stderr, r.stderr



def test_cuda_provider_that_fails_to_load_is_an_error_not_a_silent_cpu_run(tiny_model, monkeypatch):
    """Regression: onnxruntime falls back to the CPU when the CUDA provider's libraries are missing, and
    ``device='cuda'`` then ran on the CPU without a word."""
    import numpy as np
    import onnxruntime as ort

    from audioemb.errors import AudioembError
    from audioemb.runtime import load

    real = ort.InferenceSession

    class FallsBack(real):
        def __init__(self, path, so, providers):
            super().__init__(path, so, providers=[CPU])

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", FallsBack)
    with pytest.raises(AudioembError, match="CUDA provider did not load"):
        load(tiny_model, device="cuda")
    # auto falls back to the CPU
    assert load(tiny_model, device="auto").encode(np.zeros(16000, np.float32), sample_rate=16000).ndim == 1


def test_cuda_provider_is_asked_for_float32_not_tf32(tiny_model, monkeypatch):
    """Regression: onnxruntime's CUDA provider used TF32 by default, and its embeddings were up to 0.0095 from
    the CPU provider's on an H100 (1.1e-6 with ``use_tf32=0``; docs/gpu.md)."""
    import onnxruntime as ort

    from audioemb.runtime import load

    asked = []
    real = ort.InferenceSession

    class Records(real):
        def __init__(self, path, so, providers):
            asked.append(providers)
            super().__init__(path, so, providers=[CPU])

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", Records)
    load(tiny_model, device="auto")
    assert asked[-1] == [(CUDA, {"use_tf32": "0"}), CPU]
