"""The collections ``audioemb cluster`` reads: an ``audioemb embed`` output or an index folder, as vectors with
one item ({path[, start, end]}) per row; and reference labels (CSV path,label) to score a clustering against."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Collection:
    """Vectors of an embed output or index, with one item ({path[, start, end]}) per row. An index's vectors
    are not read up front: a memory map or a :class:`audioemb._vectors.RowView`, read in slices."""

    vectors: np.ndarray
    items: Sequence[dict]
    kind: str  # "embed" or "index"
    model: str | None
    root: str | None = None


def read_collection(path: str | os.PathLike) -> Collection:
    """Read an ``audioemb embed`` output folder or an index folder (from ``audioemb index build``)."""
    path = Path(path)
    if (path / "current.json").exists():
        from .index import Index

        idx = Index.load(path)
        vecs, recs = idx.items(lazy=True, rows=False)  # read as the clustering goes: it may exceed memory
        return Collection(vecs, recs, "index", idx.info["model"], idx.info.get("root"))
    if (path / "manifest.jsonl").exists() or (path / "parts").is_dir():
        from .embed import read_embeddings

        emb, records = read_embeddings(path)
        info = json.loads((path / "info.json").read_text()) if (path / "info.json").exists() else {}
        rows = [r for r in records if r.get("row") is not None]
        return Collection(np.asarray(emb[[r["row"] for r in rows]], np.float32), [{"path": r["path"]} for r in rows],
                          "embed", info.get("model"), info.get("root") or info.get("folder"))
    raise FileNotFoundError(f"{path}: neither an `audioemb embed` output (manifest.jsonl) nor an index "
                            "(current.json)")


def read_labels(csv_path: str | os.PathLike) -> dict[str, str]:
    """{path: label} from a CSV with columns path,label."""
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{csv_path}: needs a header with columns path,label (got {reader.fieldnames})")
        return {row["path"]: row["label"] for row in reader}
