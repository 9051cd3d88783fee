"""Labelled collections for ``audioemb eval``: a folder of class sub-folders, or a CSV of path,label[,group]."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import find_audio


@dataclass
class LabelledSet:
    name: str
    paths: list[Path]
    labels: np.ndarray
    groups: np.ndarray | None

    def __len__(self) -> int:
        return len(self.paths)


def load_labelled(source: str | Path, name: str | None = None) -> LabelledSet:
    """Read a CSV (columns ``path``, ``label``, optional ``group``; relative paths are relative to the
    CSV) or a folder whose immediate sub-folders are the classes."""
    src = Path(source)
    if src.is_file() and src.suffix.lower() == ".csv":
        paths, labels, groups = [], [], []
        with open(src, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
                raise ValueError(f"{src}: needs a header with 'path' and 'label' columns (and optional 'group')")
            has_group = "group" in reader.fieldnames
            for row in reader:
                p = Path(row["path"])
                paths.append(p if p.is_absolute() else (src.parent / p).resolve())
                labels.append(row["label"])
                groups.append(row["group"] if has_group else None)
        g = np.array(groups) if has_group else None
        return LabelledSet(name or src.stem, paths, np.array(labels), g)
    if src.is_dir():
        paths, labels = [], []
        for sub in sorted(p for p in src.iterdir() if p.is_dir()):
            for f in find_audio(sub):
                paths.append(f)
                labels.append(sub.name)
        if not paths:
            raise ValueError(f"{src}: no audio files in class sub-folders")
        return LabelledSet(name or src.name, paths, np.array(labels), None)
    raise ValueError(f"{src}: not a CSV file or a folder")


def drop_unreadable(ds: LabelledSet) -> tuple[LabelledSet, list[str]]:
    """``ds`` without the files whose header cannot be read (missing, empty, not audio, zero-length), and one
    message per dropped file naming it and the reason."""
    from ..audio import AudioError, info

    keep, bad = [], []
    for i, p in enumerate(ds.paths):
        try:
            if info(p).frames == 0:
                raise AudioError(p, "no audio frames (zero-length)")
            keep.append(i)
        except AudioError as e:
            bad.append(str(e))
    if not bad:
        return ds, []
    idx = np.array(keep, dtype=int)
    groups = ds.groups[idx] if ds.groups is not None else None
    return LabelledSet(ds.name, [ds.paths[i] for i in keep], ds.labels[idx], groups), bad
