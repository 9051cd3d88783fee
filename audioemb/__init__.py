"""audioemb: self-supervised audio embeddings for embedding, searching and clustering audio collections.

>>> import audioemb
>>> model = audioemb.load()                 # the default shipped model, on onnxruntime
>>> emb = model.encode(["a.wav", "b.flac"])  # (2, model.embedding_dim) float32, L2-normalised
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "load": "runtime",
    "EmbeddingModel": "runtime",
    "FrameEmbeddings": "runtime",
    "list_models": "registry",
    "DEFAULT_MODEL": "registry",
    "AudioError": "audio",
    "embed_folder": "embed",
    "read_embeddings": "embed",
    "Index": "index",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
