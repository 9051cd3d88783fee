"""A per-dimension standardisation of the clip embedding, fitted on unlabelled training clips and kept inside
the model (and its ONNX graph), in the spirit of VGGish's shipped PCA post-processor (Hershey et al., 2017).

Cosine neighbours on a raw embedding are ruled by its few dimensions of largest variance; a linear probe,
which standardises its inputs, does not mind them. Standardising inside the model gives kNN search and
clustering the same view. The statistics are fitted once, on the training clips' pooled window embeddings,
so that an affine map of each window commutes with the runtime's duration-weighted mean over windows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

STANDARDIZE = "standardize"
# Each dimension's std is floored at this share of the median std: a dimension that never varies on the fitting
# clips is centred, not blown up, and one that hardly varies (a ReLU unit almost never on) is not raised to
# unit variance, where float rounding and noise would rule it.
REL_FLOOR = 1e-2
MIN_STD = 1e-12


class EmbeddingStandardizer(nn.Module):
    """``(x - mean) / std`` per dimension of a (B, D) embedding; ``mean`` and ``std`` are fitted buffers."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def pooled_embeddings(model: nn.Module, waves: Iterable[np.ndarray]) -> np.ndarray:
    """The model's pooled embedding of each wave (one window each; waves shorter than the model's shortest
    input are skipped), before any standardiser it may hold: (N, D) float64."""
    enc = model.encoder
    with torch.inference_mode():
        out = [enc.pool(enc(model.frontend(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)[None]))))[0]
               for w in waves if len(w) > model.min_samples]
    if len(out) < 2:
        raise ValueError(f"need at least 2 clips longer than {model.min_samples} samples to fit the embedding "
                         f"standardiser, got {len(out)}")
    return torch.stack(out).double().numpy()


def fit_standardizer(model: nn.Module, waves: Iterable[np.ndarray]) -> EmbeddingStandardizer:
    """An :class:`EmbeddingStandardizer` fitted on ``model``'s pooled embeddings of ``waves`` (each std floored
    at :data:`REL_FLOOR` of the median std)."""
    x = pooled_embeddings(model, waves)
    norm = EmbeddingStandardizer(x.shape[1])
    norm.mean.copy_(torch.from_numpy(x.mean(axis=0)).float())
    std = x.std(axis=0)
    norm.std.copy_(torch.from_numpy(np.maximum(std, max(REL_FLOOR * float(np.median(std)), MIN_STD))).float())
    return norm
