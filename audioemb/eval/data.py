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
        return _read_csv(src, name)
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


def _read_csv(src: Path, name: str | None) -> LabelledSet:
    """A labelled CSV: UTF-8 (with or without the BOM spreadsheets write), header names trimmed; a row without a
    path or label, a path listed twice, or a row without a group where others have one is refused, naming the
    row (a group column left empty throughout means no groups)."""
    try:
        text = src.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{src}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip() for f in reader.fieldnames or []]
    if not {"path", "label"} <= set(fields):
        raise ValueError(f"{src}: needs a header with 'path' and 'label' columns (and optional 'group'); it has "
                         f"{fields}")
    reader.fieldnames, has_group = fields, "group" in fields
    paths, labels, groups, seen, ungrouped = [], [], [], {}, []
    for line, row in enumerate(reader, start=2):
        if None in row:
            raise ValueError(f"{src}, line {line}: more columns than the header")
        missing = [k for k in ("path", "label") if not (row.get(k) or "").strip()]
        if missing:
            raise ValueError(f"{src}, line {line}: no {missing[0]}")
        path, label, group = (row.get(k) for k in ("path", "label", "group"))
        if has_group and not (group or "").strip():
            ungrouped.append(line)
        p = Path(path) if Path(path).is_absolute() else (src.parent / path).resolve()
        if p in seen:  # a copy on both sides of a split inflates every figure
            raise ValueError(f"{src}, line {line}: {path} is listed again (first on line {seen[p]})")
        seen[p] = line
        paths.append(p)
        labels.append(label)
        groups.append(group)
    if ungrouped and len(ungrouped) < len(paths):  # an empty group column means no groups; a gap is a mistake
        raise ValueError(f"{src}, line {ungrouped[0]}: no group (other rows have one)")
    has_group = has_group and not ungrouped
    return LabelledSet(name or src.stem, paths, np.array(labels), np.array(groups) if has_group else None)


def check_classes(ds: LabelledSet, source) -> None:
    """Refuse a set the metrics cannot use as it is: fewer than 2 classes, or a class with 1 readable clip (a
    probe trains on some clips of each class and tests on others; few-shot and mAP would leave it out)."""
    labels, counts = np.unique(ds.labels, return_counts=True)
    if len(labels) < 2:
        raise ValueError(f"{source}: {ds.name} needs at least 2 classes of readable audio, found {len(labels)}")
    if counts.min() < 2:
        raise ValueError(f"{source}: class {str(labels[counts.argmin()])!r} of {ds.name} has {counts.min()} readable "
                         "clip; each class needs at least 2")


def drop_unreadable(ds: LabelledSet, decode: bool = False) -> tuple[LabelledSet, list[str]]:
    """``ds`` without the files whose header cannot be read (missing, empty, not audio, zero-length) or, with
    ``decode``, that do not decode to usable audio (all NaN, truncated past reading), and one message per
    dropped file naming it and the reason."""
    from ..audio import AudioError, info, load

    keep, bad = [], []
    for i, p in enumerate(ds.paths):
        try:
            if info(p).frames == 0:
                raise AudioError(p, "no audio frames (zero-length)")
            if decode:
                load(p)
            keep.append(i)
        except AudioError as e:
            bad.append(str(e))
    if not bad:
        return ds, []
    idx = np.array(keep, dtype=int)
    groups = ds.groups[idx] if ds.groups is not None else None
    return LabelledSet(ds.name, [ds.paths[i] for i in keep], ds.labels[idx], groups), bad
