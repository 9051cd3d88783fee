"""The HEAR 2021 API contract, checked the way hear-validator checks it (without its tensorflow dependency)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from audioemb import hear  # noqa: E402


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_frame_model"])
def test_hear_contract(fixture, request):
    model = hear.load_model(str(request.getfixturevalue(fixture)))
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate in (16000, 22050, 44100, 48000)
    assert isinstance(model.scene_embedding_size, int) and isinstance(model.timestamp_embedding_size, int)
    g = torch.Generator().manual_seed(0)
    for length in (1.07, 1.98, 4.0, 12.3):  # the validator's lengths, and one longer than a window
        audio = torch.rand((2, int(length * model.sample_rate)), generator=g) * 2 - 1
        emb, ts = hear.get_timestamp_embeddings(audio, model)
        assert emb.dtype == torch.float32 and emb.ndim == 3 and ts.ndim == 2
        assert emb.shape[0] == 2 and emb.shape[:2] == ts.shape and emb.shape[2] == model.timestamp_embedding_size
        diff = np.diff(ts.numpy(), axis=1)
        assert np.abs(diff - diff.mean()).max() <= 1.0  # regular intervals (1 ms tolerance)
        assert ts.min() <= diff.mean()
        assert 1000 * length - 2 * diff.mean() <= ts.max() <= 1000 * length
    audio = torch.rand((4, int(2.74 * model.sample_rate)), generator=g) * 2 - 1
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.dtype == torch.float32 and scene.shape == (4, model.scene_embedding_size)
    assert torch.allclose(hear.get_scene_embeddings(audio[:1], model), scene[:1], atol=1e-5)  # batch-independent


def test_hear_layers_and_edge_inputs(tiny_model):
    """Regression: `layer="all"` (as docs/hear.md said) raised, `layer=7` was accepted until the first
    embedding, an empty batch broke `get_timestamp_embeddings` and a NumPy array gave an AttributeError."""
    mean = hear.load_model(str(tiny_model), layer="all")
    assert mean.layer == "mean"
    with pytest.raises(ValueError, match="layer must be"):
        hear.load_model(str(tiny_model), layer=7)
    model = hear.load_model(str(tiny_model))
    emb, ts = hear.get_timestamp_embeddings(torch.zeros(0, model.sample_rate), model)
    assert emb.shape == (0, 0, model.timestamp_embedding_size) and ts.shape == (0, 0)
    assert hear.get_scene_embeddings(torch.zeros(0, model.sample_rate), model).shape == (0, model.scene_embedding_size)
    with pytest.raises(TypeError, match=r"takes a torch\.Tensor"):
        hear.get_scene_embeddings(np.zeros((1, model.sample_rate), np.float32), model)
