"""The random-init baselines' ONNX cache, shared by evaluations that run at the same time."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from audioemb.eval import baselines
from audioemb.nn import export


def test_two_writers_of_one_random_init_model_both_succeed(tmp_path, tiny_model, clips16k, monkeypatch):
    """Two exports at once wrote the same random-init ONNX into one ``.tmp`` folder; the second failed with
    FileNotFoundError once the first renamed it (2026-11-28). Each writer now has a folder of its own."""
    real = export.save_model
    calls = []

    def other_writer_finishes_first(module, folder, meta, waves):
        calls.append(folder)
        if len(calls) == 1:  # while we start, another evaluation writes the same model and finishes
            baselines.random_init_model(tiny_model, seed=0, onnx_dir=tmp_path)
        return real(module, folder, meta, waves)

    monkeypatch.setattr(export, "save_model", other_writer_finishes_first)
    ours = baselines.random_init_model(tiny_model, seed=0, onnx_dir=tmp_path)
    assert len(calls) == 2 and calls[0] != calls[1]  # two writers, two folders
    kept = [p for p in tmp_path.iterdir()]
    assert len(kept) == 1 and kept[0].name == ours.cache_key[:40]  # no .tmp folder is left behind
    again = baselines.random_init_model(tiny_model, seed=0, onnx_dir=tmp_path)  # now read from the cache
    assert len(calls) == 2
    wav = [clips16k[0][:16000]]
    np.testing.assert_array_equal(ours.encode(wav), again.encode(wav))
