"""Training data from any folders of audio: decode once into a cache, never inside the user's folders.

Every file under the folders (recursive; any format, rate and channel count soundfile reads) is decoded,
mixed to mono and resampled to the model's rate once, in a pool of processes, into one int16 memmap with
offsets (:class:`~audioemb.train.data.Pack`). Long files are indexed as segments of at most
``segment_s`` seconds, so a long recording is sampled in proportion to its length. Bad files are reported
once (in the log and in ``cache/errors.jsonl``) and skipped. The cache is keyed by the file list with
sizes and modification times, so adding a file rebuilds it and nothing else does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ..audio import AudioError, is_listed_audio, load
from ..fsio import atomic_write
from .data import PACK_VERSION, DataError, Pack

SEGMENT_S = 10.0
MIN_S = 0.1


def scan(folders: list[Path]) -> list[tuple[Path, str]]:
    """(absolute path, "<folder name>/<relative path>") of every audio file under ``folders``, sorted within
    each folder; a file under two of them (the same folder twice, or one inside another) is listed once."""
    out, seen = [], set()
    for folder in folders:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise DataError(f"{folder}: not a folder")
        found = [p for p in folder.rglob("*") if p.is_file() and is_listed_audio(p)]
        if not found:
            raise DataError(f"{folder}: no audio files in this folder (recursively)")
        for p, rel in sorted((p.resolve(), f"{folder.name}/{p.relative_to(folder).as_posix()}") for p in found):
            if p not in seen:
                seen.add(p)
                out.append((p, rel))
    return out


def _fingerprint(files: list[tuple[Path, str]], sample_rate: int) -> str:
    h = hashlib.sha256(f"v{PACK_VERSION} sr={sample_rate}\n".encode())
    for p, rel in files:
        st = p.stat()
        h.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def file_list_sha256(rels: list[str]) -> str:
    """sha256 of the sorted relative file list, one path per line (what the model card records)."""
    # a name that is not valid UTF-8 keeps its bytes (surrogateescape), as the file system gave them
    return hashlib.sha256("".join(r + "\n" for r in sorted(rels)).encode("utf-8", "surrogateescape")).hexdigest()


def _decode(args: tuple[str, int]) -> tuple[np.ndarray | None, str | None]:
    path, sr = args
    try:
        audio = load(path, sr)
    except AudioError as e:
        return None, e.reason
    except Exception as e:  # a decoder bug on one file must not stop the job
        return None, f"{type(e).__name__}: {e}"
    if len(audio) < MIN_S * sr:
        return None, f"shorter than {MIN_S} s"
    if not np.isfinite(audio).all():
        audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16), None


def folder_pack(folders: list[Path], cache: Path, sample_rate: int = 16000, workers: int = 2,
                log: Callable[[str], None] = print) -> tuple[Pack, dict]:
    """Open or build the pack of ``folders`` in ``cache``; return it with a summary for ``data.json``."""
    files = scan(folders)
    key = _fingerprint(files, sample_rate)
    cache.mkdir(parents=True, exist_ok=True)
    audio_p, index_p = cache / f"pack-{key[:16]}.int16", cache / f"pack-{key[:16]}.json"
    if not index_p.exists():
        _build(files, audio_p, index_p, sample_rate, workers, log)
    idx = json.loads(index_p.read_text())
    audio = np.memmap(audio_p, dtype=np.int16, mode="r") if audio_p.stat().st_size else np.zeros(0, np.int16)
    pack = Pack(audio, np.array(idx["offsets"], dtype=np.int64), np.array(idx["lengths"], dtype=np.int64),
                idx["paths"], idx["sample_rate"])
    if len(pack) == 0:
        raise DataError(f"none of the {len(files)} audio files in {', '.join(map(str, folders))} could be decoded")
    summary = {"kind": "folders", "folders": [str(Path(f).expanduser().resolve()) for f in folders],
               "files": len(files) - len(idx["errors"]), "skipped": len(idx["errors"]), "clips": len(pack),
               "hours": round(float(pack.lengths.sum()) / sample_rate / 3600, 4),
               "file_list_sha256": file_list_sha256(idx["used"]), "licences": [], "data_tag": None}
    return pack, summary


def _build(files, audio_p: Path, index_p: Path, sr: int, workers: int, log) -> None:
    log(f"decoding {len(files)} audio files to {sr} Hz mono into {audio_p.parent} ...")
    seg = int(SEGMENT_S * sr)
    offsets, lengths, paths, used, errors = [], [], [], [], []
    total = 0

    def write_audio(tmp: Path) -> None:
        nonlocal total
        with open(tmp, "wb") as raw, get_context("spawn").Pool(max(1, workers)) as pool:
            jobs = pool.imap(_decode, [(str(p), sr) for p, _ in files], chunksize=4)
            for (_, rel), (audio, err) in zip(files, jobs):
                if err is not None:
                    errors.append({"path": rel, "error": err})
                    log(f"  skipped {rel}: {err}")
                    continue
                raw.write(audio.tobytes())
                used.append(rel)
                for s in range(0, len(audio), seg):
                    n = min(seg, len(audio) - s)
                    if n >= MIN_S * sr:
                        offsets.append(total + s)
                        lengths.append(n)
                        paths.append(rel if len(audio) <= seg else f"{rel}@{s / sr:g}")
                total += len(audio)

    atomic_write(audio_p, write_audio)
    atomic_write(index_p.parent / "errors.jsonl", "".join(json.dumps(e) + "\n" for e in errors))
    atomic_write(index_p, json.dumps({"version": PACK_VERSION, "sample_rate": sr, "paths": paths, "offsets": offsets,
                                      "lengths": lengths, "used": used, "errors": errors}))
    log(f"cached {len(used)} files ({total / sr / 3600:.2f} h, {len(offsets)} segments); {len(errors)} skipped")
