"""The HEAR 2021 common API (Turian et al., 2022) over any audioemb model.

``load_model(path)`` takes a model folder or a shipped name ("" for the default model) and returns a
``torch.nn.Module`` (as the HEAR validator requires) exposing ``sample_rate``, ``scene_embedding_size`` and
``timestamp_embedding_size``. Embeddings come from the same deterministic ``encode`` as everywhere else
(onnxruntime by default): scene embeddings are the clip embeddings, timestamp embeddings the model's frames,
with their centre times in milliseconds. Needs torch for the tensors the API passes.
"""

from __future__ import annotations

import numpy as np
import torch

from .runtime import EmbeddingModel, load


class HearModel(torch.nn.Module):
    """Wraps an :class:`~audioemb.runtime.EmbeddingModel` with the attributes HEAR expects."""

    def __init__(self, model: EmbeddingModel, layer=None):
        super().__init__()
        self.model, self.layer = model, layer
        self.sample_rate: int = model.sample_rate
        self.scene_embedding_size: int = model.embedding_dim
        self.timestamp_embedding_size: int = model.frame_dim


def load_model(model_file_path: str = "", backend: str = "onnx", layer=None) -> HearModel:
    """A model folder path or shipped name ('' = the default model), ready for the HEAR functions. ``layer``:
    None (the last), a layer index, or "mean" (also "all") for the mean of all layers; checked here."""
    model = load(model_file_path or None, backend=backend)
    layer = "mean" if layer == "all" else layer
    model.check_layer(layer)  # a bad layer fails now, not at the first embedding
    return HearModel(model, layer=layer)


def _arrays(audio: torch.Tensor, model: HearModel) -> list[np.ndarray]:
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"the HEAR API takes a torch.Tensor of (n_sounds, n_samples), not {type(audio).__name__} "
                        "(for arrays, use model.model.encode)")
    if audio.ndim != 2:
        raise ValueError(f"audio must be (n_sounds, n_samples), got shape {tuple(audio.shape)}")
    return list(audio.detach().cpu().float().numpy())


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """(n_sounds, n_samples) audio at ``model.sample_rate`` -> (n_sounds, scene_embedding_size) float32."""
    emb = model.model.encode(_arrays(audio, model), sample_rate=model.sample_rate, normalize=False,
                             layer=model.layer)
    return torch.from_numpy(np.asarray(emb, dtype=np.float32)).to(audio.device)


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_sounds, n_samples) -> embeddings (n_sounds, n_frames, timestamp_embedding_size) and frame centre
    times (n_sounds, n_frames) in milliseconds, at the model's frame rate."""
    frames = model.model.encode(_arrays(audio, model), sample_rate=model.sample_rate, normalize=False,
                                output="frames", layer=model.layer)
    if not frames:  # an empty batch, as get_scene_embeddings answers it
        shape = (0, 0, model.timestamp_embedding_size)
        return torch.zeros(shape, device=audio.device), torch.zeros((0, 0), device=audio.device)
    n = min(len(f) for f in frames)  # equal-length inputs give equal frame counts
    emb = np.stack([f.embeddings[:n] for f in frames]).astype(np.float32)
    ts = np.stack([f.timestamps[:n] * 1000.0 for f in frames]).astype(np.float32)
    return torch.from_numpy(emb).to(audio.device), torch.from_numpy(ts).to(audio.device)
