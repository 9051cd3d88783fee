"""``Index``: search an audio collection by example, with faiss and SQLite metadata.

>>> idx = Index.build("sounds/", "sounds.idx", segments=5.0)      # one vector per 5 s of audio
>>> idx.search("query.wav", k=10)                                   # [Hit(path, start, end, score, rank, row)]
>>> idx.search(("long.wav", 60.0, 65.0)); idx.search("long.wav@60-65")
>>> Index.load("sounds.idx").add("sounds/")                         # new and changed files only

Vectors are L2-normalised embeddings compared by inner product (cosine); the faiss index type (flat, HNSW,
IVF, IVF-PQ) is chosen from the collection's size and a memory budget, see :mod:`audioemb._faiss` for the
thresholds. Without ``segments`` each file is one vector (its clip embedding, segment = whole file); with
``segments=S`` each file is cut into consecutive S-second windows and each window is one vector; a tail
shorter than S/2 is replaced by the file's last S seconds (overlapping the previous window), one shorter
than S/10 is dropped.

INDEX/ holds::

    current.json            the committed version: {"version", "files": {faiss, vectors, meta}, "previous"}
    index.NNNNNN.faiss      faiss index; its ids are rows of vectors.NNNNNN.npy
    vectors.NNNNNN.npy      every vector (float32), so the index can always be rebuilt
    meta.NNNNNN.sqlite      tables info (key, JSON value), files (path relative to the collection folder,
                            size, mtime_ns, duration_s, error) and segments (row = faiss id, file_id,
                            start_s, end_s, model); view ``vectors`` joins them
    index.faiss, vectors.npy, meta.sqlite   hard links to the current version's files (for other tools)
    .lock                   writers hold an fcntl.flock on it

Writers (``add``, ``build`` over an existing index) take the lock, write the next version's files through
temporary names and os.replace, then swap current.json; a new index is built in a temporary folder renamed
into place. A crash at any point leaves the last committed version readable. Readers take no lock: they read
current.json and open the files it names; the previous version's files are kept for readers that raced a
writer, older ones are deleted. Rows of removed segments (changed or pruned files) stay in vectors.npy as
dead rows until they outnumber the live ones; then the index is rebuilt compactly.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, _faiss
from . import audio as audio_io
from ._index_embed import _Collected, _embed_files, _l2, _plan_add, _progress, _scan
from ._index_store import CURRENT, FILE_COLS, IndexStoreError, Meta, Version, locked, open_version
from .runtime import EmbeddingModel, load

_RANGE = re.compile(r"^(.*)@(\d+(?:\.\d*)?)-(\d+(?:\.\d*)?)?$")


class ModelMismatchError(IndexStoreError, ValueError):
    """A model, query vector or embedding folder that does not match the index's model."""


@dataclass
class Hit:
    """One search result: a segment ``[start, end]`` seconds of ``path`` (relative to the collection)."""

    path: str
    start: float
    end: float
    score: float
    rank: int
    row: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AddSummary:
    added: int
    changed: int
    removed: int
    failed: int
    unchanged: int
    rebuilt: bool
    count: int
    unreadable: list = field(default_factory=list)  # (folder, reason) that could not be listed
    problems: list = field(default_factory=list)  # file records of this add with an error or a warning

    def line(self) -> str:
        s = (f"added {self.added} files, re-embedded {self.changed}, removed {self.removed}, failed {self.failed}, "
             f"unchanged {self.unchanged}{' (index rebuilt)' if self.rebuilt else ''}; {self.count} vectors")
        if self.unreadable:
            s += f"; {len(self.unreadable)} folders could not be read, their files were kept"
        return s


def _model_sha(m: EmbeddingModel) -> str | None:
    return m.folder.config["files"].get("model.onnx")


def _same_model(m: EmbeddingModel, info: dict) -> bool:
    """Whether ``m`` is the model ``info`` (of an index or embed output) was written with: by identity
    (config + weights), or by the ONNX sha256 alone for what older versions wrote."""
    if info.get("model_id"):
        return m.folder.identity == info["model_id"]
    return _model_sha(m) == info.get("model_sha256")


def _model_ref(m: EmbeddingModel) -> str:
    """How to load ``m`` again: its name for a shipped model, else its folder's absolute path."""
    from .registry import pretrained_dir

    p = Path(m.folder.path).resolve()
    return m.name if p.parent == pretrained_dir().resolve() else str(p)


def parse_query(s: str) -> tuple[str, float | None, float | None]:
    """``"path@START-END"`` (seconds; END may be left out) -> (path, start, end); a plain path -> (path, None, None)."""
    m = _RANGE.match(s)
    if m and not os.path.exists(s):
        return m[1], float(m[2]), (float(m[3]) if m[3] else None)
    return s, None, None


def _read_range(path, start: float, end: float | None, sr: int) -> np.ndarray:
    """Samples [start, end) seconds of a file at ``sr``, decoding only up to ``end``."""
    a = int(round(start * sr))
    b = None if end is None else int(round(end * sr))
    if b is not None and b <= a:
        raise ValueError(f"{path}@{start}-{end}: the end must come after the start")
    got, at = [], 0
    for block in audio_io.stream(path, sr):
        lo, hi = max(a - at, 0), len(block) if b is None else min(b - at, len(block))
        if hi > lo:
            got.append(block[lo:hi])
        at += len(block)
        if b is not None and at >= b:
            break
    if not got:
        raise ValueError(f"{path}: start {start} s is past the end of the file ({at / sr:.2f} s)")
    return np.concatenate(got)


# ------------------------------------------------------------------------------------------------------ Index
class Index:
    """A searchable index of an audio collection (see the module docstring); ``Index.build`` or ``Index.load``."""

    def __init__(self, path: Path, cur: dict, meta: Meta, index, vectors: np.ndarray, model=None,
                 device: str = "auto"):
        self.path, self._cur, self._meta, self._faiss, self._vectors = Path(path), cur, meta, index, vectors
        self._device = device
        self._model: EmbeddingModel | None = None
        self._seg_of_row: np.ndarray | None = None
        if model is not None:
            self._model = self._checked(model)

    # ---------------------------------------------------------------------------------------- construction
    @classmethod
    def load(cls, path: str | os.PathLike, model: str | EmbeddingModel | None = None, device: str = "auto") -> Index:
        """Open the committed version of an index. ``model`` (name, folder or loaded model) must be the
        index's own model, else :class:`ModelMismatchError`; None loads it by name when first needed, on
        ``device`` (auto, cpu or cuda: onnxruntime's providers)."""
        path = Path(path)
        return cls(path, *open_version(path), model=model, device=device)

    @classmethod
    def build(cls, root: str | os.PathLike, out: str | os.PathLike, model: str | EmbeddingModel | None = None,
              segments: float | None = None, index_type: str = "auto", from_embed: str | os.PathLike | None = None,
              overwrite: bool = False, memory_budget_gb: float = 4.0, target_recall: float = 0.95,
              batch_size: int = 32, seed: int = 0, progress: bool = False, device: str = "auto") -> Index:
        """Embed every audio file under ``root`` (or reuse an ``embed`` output folder ``from_embed``) and
        write a faiss index to ``out``.

        Args:
            segments: index windows of this many seconds instead of whole files.
            index_type: ``auto`` (by size and ``memory_budget_gb``), ``flat``, ``hnsw``, ``ivf`` or ``ivfpq``.
            overwrite: replace an existing index at ``out`` (as a new version, readers keep working).
            target_recall: nprobe / efSearch are raised until recall@10 vs exact search reaches this.
        """
        root, out = Path(root), Path(out)
        if index_type != "auto" and index_type not in _faiss.TYPES:
            raise ValueError(f"index type must be auto, {', '.join(_faiss.TYPES)}; got {index_type!r}")
        if segments is not None and segments <= 0:
            raise ValueError(f"segments must be a positive number of seconds, got {segments}")
        if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / CURRENT).exists())):
            raise IndexStoreError(f"{out} exists and is not an audioemb index; choose another output folder")
        if (out / CURRENT).exists() and not overwrite:
            raise IndexStoreError(f"{out} is already an index; use `audioemb index add` to update it, or --force "
                                  "(overwrite=True) to rebuild it")
        if from_embed is not None:
            if segments:
                raise ValueError("segments cannot be used with from_embed (embed outputs hold one vector per file)")
            m, col = _from_embed(Path(from_embed), model)
            unreadable = []
        else:
            m = model if isinstance(model, EmbeddingModel) else load(model, device=device)
            col = _Collected(m.embedding_dim)
            todo, unreadable = _scan(root)
            with _progress(len(todo), progress) as step:
                for rec, spans, vecs in _embed_files(m, todo, segments, batch_size, step):
                    col.add(rec, spans, vecs)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        info = {"format_version": 1, "audioemb_version": __version__, "model": m.name, "model_sha256": _model_sha(m),
                "model_id": m.folder.identity, "unreadable_folders": [list(u) for u in unreadable],
                "model_ref": _model_ref(m), "dim": m.embedding_dim, "sample_rate": m.sample_rate,
                "metric": "inner product of L2-normalised vectors (cosine)", "segments_s": segments,
                "root": str(root.resolve()), "index_type_requested": index_type, "memory_budget_gb": memory_budget_gb,
                "target_recall": target_recall, "seed": seed, "created": now}
        meta, vecs = col.meta(info)
        if not len(vecs):
            raise IndexStoreError(f"nothing to index: {len(col.files)} audio files under {root}, none embedded"
                                  + "".join(f"\n  {f['path']}: {f['error']}" for f in col.files[:10]))

        def write(folder: Path) -> None:
            ver = Version(folder)
            stored = ver.write_vectors([vecs])
            ver.commit(meta, _make_faiss(meta, stored, None, now))

        if (out / CURRENT).exists():
            with locked(out):
                write(out)
        else:
            tmp = out.parent / f".{out.name}.building-{os.getpid()}"
            _remove_stale_builds(out)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                write(tmp)
                os.rename(tmp, out)  # replaces an empty folder too
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return cls.load(out, model=m, device=device)

    # ------------------------------------------------------------------------------------------ properties
    @property
    def info(self) -> dict:
        """Model, dim, index type, count, recall@10, build params, created/updated times, ..."""
        return dict(self._meta.info)

    def __len__(self) -> int:
        return len(self._meta.rows)

    def __repr__(self) -> str:
        i = self._meta.info
        return f"Index({str(self.path)!r}, {len(self)} vectors, {i['index_type']}, model={i['model']!r})"

    @property
    def model(self) -> EmbeddingModel:
        """The index's model, loaded by its recorded name or folder when first needed."""
        if self._model is None:
            ref = self._meta.info["model_ref"]
            try:
                m = load(ref, device=self._device)
            except Exception as e:
                raise IndexStoreError(f"{self.path} was built with model {self._meta.info['model']!r} from {ref}, "
                                      f"which cannot be loaded ({e}); pass model= to Index.load") from None
            self._model = self._checked(m)
        return self._model

    def _checked(self, model: str | EmbeddingModel) -> EmbeddingModel:
        m = model if isinstance(model, EmbeddingModel) else load(model)
        i = self._meta.info
        if not _same_model(m, i) or m.embedding_dim != i["dim"]:
            raise ModelMismatchError(
                f"{self.path} was built with model {i['model']!r} (sha256 {str(i['model_sha256'])[:12]}, dim "
                f"{i['dim']}); model {m.name!r} (sha256 {str(_model_sha(m))[:12]}, dim {m.embedding_dim}) embeds "
                "differently, so its vectors cannot be searched here. Use the index's model or rebuild the index.")
        return m

    def disk_size(self) -> int:
        """Bytes of the committed version's files."""
        return sum((self.path / f).stat().st_size for f in set(self._cur["files"].values())) + \
            (self.path / CURRENT).stat().st_size

    def items(self) -> tuple[np.ndarray, list[dict]]:
        """Every live vector (N, D) and its {path, start, end, row}, in row order."""
        m = self._meta
        vecs = np.asarray(self._vectors[m.rows], dtype=np.float32)
        recs = [{"path": m.files[f]["path"], "start": float(a), "end": float(b), "row": int(r)}
                for r, f, a, b in zip(m.rows, m.file_of, m.start, m.end)]
        return vecs, recs

    @property
    def files(self) -> list[dict]:
        """Every file of the collection: path, size, mtime_ns, duration_s, error."""
        return [dict(f) for f in self._meta.files]

    # -------------------------------------------------------------------------------------------------- search
    def embed_query(self, query, sample_rate: int | None = None) -> np.ndarray:
        """The query's embedding: a path, ``"path@START-END"``, ``(path, start, end)``, a waveform (with
        ``sample_rate``) or an embedding vector (no ``sample_rate``)."""
        if not isinstance(query, (str, os.PathLike, tuple)):
            arr = np.asarray(query, dtype=np.float32)
            return arr if sample_rate is None else self.model.encode(arr, sample_rate=sample_rate)
        if isinstance(query, tuple):
            path, start, end = query
        else:
            path, start, end = parse_query(os.fspath(query))
        if start is None and end is None:
            return self.model.encode(path)
        try:
            return self.model.encode(_read_range(path, start or 0.0, end, self.model.sample_rate))
        except audio_io.AudioError as e:  # name the query file, not the decoded range
            raise audio_io.AudioError(f"{path}@{start or 0:g}-{'' if end is None else f'{end:g}'}", e.reason) from None

    def search(self, query, k: int = 10, collapse: bool = True, sample_rate: int | None = None) -> list[Hit]:
        """The ``k`` nearest segments to ``query`` (see :meth:`embed_query`), best first.

        With ``collapse`` each file appears once, with its best segment.
        """
        return self.search_vector(self.embed_query(query, sample_rate), k, collapse)

    def search_vector(self, vector: np.ndarray, k: int = 10, collapse: bool = True) -> list[Hit]:
        """Search with a pre-computed embedding of the index's model (its dimension is checked)."""
        v = np.asarray(vector, dtype=np.float32)
        dim = self._meta.info["dim"]
        if v.shape != (dim,):
            raise ModelMismatchError(f"query vector has shape {v.shape}; this index holds {dim}-d vectors of model "
                                     f"{self._meta.info['model']!r} (pass sample_rate= to search a waveform)")
        if not np.isfinite(v).all():
            raise ValueError("the query vector holds NaN or Inf; it cannot be searched")
        n = len(self)
        if n == 0 or k <= 0:
            return []
        if self._seg_of_row is None:
            self._seg_of_row = np.full(len(self._vectors), -1, np.int64)
            self._seg_of_row[self._meta.rows] = np.arange(n)
        q = _l2(v)[None]
        kk = min(n, 4 * k if collapse else k)
        while True:
            scores, rows = self._faiss.search(q, kk)
            hits, seen = [], set()
            for score, row in zip(scores[0], rows[0]):
                s = self._seg_of_row[row] if 0 <= row < len(self._seg_of_row) else -1
                if s < 0:
                    continue
                f = int(self._meta.file_of[s])
                if collapse and f in seen:
                    continue
                seen.add(f)
                hits.append(Hit(self._meta.files[f]["path"], float(self._meta.start[s]), float(self._meta.end[s]),
                                float(score), len(hits) + 1, int(row)))
                if len(hits) == k:
                    return hits
            if kk >= n:
                return hits
            kk = min(n, kk * 4)

    # ----------------------------------------------------------------------------------------------- update
    def add(self, root: str | os.PathLike | None = None, prune: bool = False, batch_size: int = 32,
            progress: bool = False, new_root: bool = False) -> AddSummary:
        """Embed files under ``root`` (default: the folder the index was built from) that are new, changed
        (size or mtime_ns differs) or failed before; a changed file's old vectors are removed. ``prune``
        also removes files no longer under ``root`` (never those under a folder that cannot be listed).
        Another folder than the index's is refused unless ``new_root`` makes it the index's folder.
        Atomic: a crash leaves the previous version."""
        root = Path(root) if root is not None else Path(self._meta.info["root"])
        with locked(self.path):
            self._reload()
            old, model = self._meta, self.model
            moved = str(root.resolve()) != old.info["root"]
            if moved and not new_root:
                raise IndexStoreError(f"{self.path} indexes {old.info['root']}, not {root.resolve()}: files with the "
                                      "same relative paths would replace each other. Use --new-root (new_root=True) "
                                      "to make it the index's folder, or build another index.")
            if moved:
                old.info["root"] = str(root.resolve())
            scanned, unreadable = _scan(root)
            todo, drop, added = _plan_add(old.files, scanned, unreadable, prune)
            unchanged = len(scanned) - len(todo)
            if not todo and not drop and not moved:
                return AddSummary(0, 0, 0, 0, unchanged, False, len(self), unreadable)
            col = _Collected(old.info["dim"])
            with _progress(len(todo), progress) as step:
                for rec, spans, vecs in _embed_files(model, todo, old.info["segments_s"], batch_size, step):
                    col.add(rec, spans, vecs)
            rebuilt = self._apply(col, sorted(drop))
        failed = sum(1 for f in col.files if f["error"])
        return AddSummary(added, len(todo) - added, len(drop) - (len(todo) - added), failed, unchanged, rebuilt,
                          len(self), unreadable, [f for f in col.files if f["error"] or f.get("warning")])

    def _reload(self) -> None:
        cur, meta, index, vectors = open_version(self.path)
        self._cur, self._meta, self._faiss, self._vectors, self._seg_of_row = cur, meta, index, vectors, None
        if self._model is not None and not _same_model(self._model, meta.info):
            self._model = None  # rebuilt with another model meanwhile: load that one when needed

    def _apply(self, col: _Collected, drop: list[int]) -> bool:
        """Commit a new version without the files ``drop`` and with ``col``'s; True if rebuilt from scratch."""
        import faiss

        old, info = self._meta, dict(self._meta.info)
        keep = np.setdiff1d(np.arange(len(old.files)), np.asarray(drop, np.int64))
        remap = np.full(len(old.files), -1, np.int64)
        remap[keep] = np.arange(len(keep))
        seg_keep = remap[old.file_of] >= 0
        n_rows = len(self._vectors)
        new, new_vecs = col.meta(info, first_row=n_rows)
        meta = Meta(info, [old.files[i] for i in keep] + new.files,
                     np.concatenate([old.rows[seg_keep], new.rows]),
                     np.concatenate([remap[old.file_of[seg_keep]], new.file_of + len(keep)]),
                     np.concatenate([old.start[seg_keep], new.start]), np.concatenate([old.end[seg_keep], new.end]))
        live, removed = len(meta.rows), old.rows[~seg_keep]
        kind = info["index_type"]
        if info["index_type_requested"] == "auto":
            want = _faiss.choose_type(live, info["dim"], info["memory_budget_gb"])
        else:
            want = kind
        ver = Version(self.path)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        rebuild = want != kind or n_rows + len(new_vecs) - live > live
        if rebuild:  # compact: renumber live rows 0..live-1 and build afresh
            stored = ver.write_vectors([self._vectors[old.rows[seg_keep]], new_vecs])
            meta.rows = np.arange(live, dtype=np.int64)
            index = _make_faiss(meta, stored, None, now, kind=want)
        else:
            stored = ver.write_vectors([self._vectors, new_vecs]) if len(new_vecs) else self._vectors
            if not len(new_vecs):
                ver.reuse_vectors()
            if len(removed) and kind == "hnsw":  # HNSW cannot remove: rebuild the graph from the stored vectors
                index = _faiss.build(stored[np.sort(meta.rows)], np.sort(meta.rows), kind, info["build_params"])
            else:
                index = faiss.clone_index(self._faiss)
                if len(removed):
                    index.remove_ids(removed.astype(np.int64))
                _faiss.add(index, new_vecs, new.rows)
            _record_recall(meta, index, stored, now)
        ver.commit(meta, index)
        self._reload()
        return bool(rebuild)


def _make_faiss(meta: Meta, vectors: np.ndarray, params: dict | None, now: str, kind: str | None = None):
    """Build the faiss index for ``meta`` (choosing its type unless forced) and record recall in ``meta.info``."""
    info = meta.info
    n, dim = len(meta.rows), info["dim"]
    req = info["index_type_requested"]
    kind = kind or (_faiss.choose_type(n, dim, info["memory_budget_gb"]) if req == "auto" else req)
    info["index_type"] = kind
    info["build_params"] = params or _faiss.default_params(kind, n, dim)
    index = _faiss.build(vectors[meta.rows], meta.rows, kind, info["build_params"], seed=info.get("seed", 0))
    _record_recall(meta, index, vectors, now)
    return index


def _record_recall(meta: Meta, index, vectors: np.ndarray, now: str) -> None:
    info = meta.info
    recall, params = _faiss.tune(index, info["index_type"], info["build_params"], vectors, meta.rows,
                                 target=info["target_recall"], seed=info.get("seed", 0))
    info.update(build_params=params, **{"recall@10": round(recall, 4)}, count=len(meta.rows),
                n_files=len(meta.files), n_failed=sum(1 for f in meta.files if f["error"]), n_rows=len(vectors),
                updated=now)


def _from_embed(out: Path, model) -> tuple[EmbeddingModel, _Collected]:
    """Vectors and files of an ``audioemb embed`` output folder, checked against ``model``."""
    from .embed import read_embeddings

    try:
        have = json.loads((out / "info.json").read_text())
    except FileNotFoundError:
        raise IndexStoreError(f"{out}: no info.json; not an `audioemb embed` output folder") from None
    if model is None:
        try:
            model = load(have["model"])
        except Exception as e:
            raise IndexStoreError(f"{out} was embedded with model {have['model']!r}, which cannot be loaded by name "
                                  f"({e}); pass its folder as model") from None
    m = model if isinstance(model, EmbeddingModel) else load(model)
    if have.get("model") != m.name or not _same_model(m, have):
        raise ModelMismatchError(f"{out} was embedded with model {have.get('model')!r} (sha256 "
                                 f"{str(have.get('model_sha256'))[:12]}), not {m.name!r} "
                                 f"(sha256 {str(_model_sha(m))[:12]})")
    if have.get("layer") is not None:
        raise ModelMismatchError(f"{out} holds layer {have['layer']!r} embeddings; queries use the last layer")
    emb, records = read_embeddings(out)
    col = _Collected(m.embedding_dim)
    for r in records:
        rec = {k: r.get(k) for k in FILE_COLS}
        ok = r.get("row") is not None
        if ok and not np.isfinite(emb[r["row"]]).all():  # written by an older version that stored them
            ok, rec["error"] = False, "non-finite embedding (NaN or Inf) in the embed output"
        col.add(rec, [(0.0, float(r.get("duration_s") or 0.0))] if ok else [],
                emb[[r["row"]]] if ok else np.zeros((0, m.embedding_dim), np.float32))
    return m, col


def _remove_stale_builds(out: Path) -> None:
    """Delete temporary build folders for ``out`` left by processes that no longer exist."""
    for p in out.parent.glob(f".{out.name}.building-*"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(p.name.rsplit("-", 1)[1])
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                shutil.rmtree(p, ignore_errors=True)
