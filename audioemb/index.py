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

    current.json            the committed version: {"version", "files": {faiss, vectors, meta[, ivfdata]},
                            "previous"}
    index.NNNNNN.faiss      faiss index; its ids are rows of vectors.NNNNNN.npy
    index.NNNNNN.ivfdata    its inverted lists, for an IVF index larger than the memory budget (memory-mapped)
    vectors.NNNNNN.npy      every vector (float32), so the index can always be rebuilt (IVF-PQ re-ranks with it)
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

Modules: :mod:`audioemb._index_store` (versions on disk), :mod:`audioemb._index_build` (writing versions),
:mod:`audioemb._index_from` (embed outputs, arrays, merges), :mod:`audioemb._index_embed` (scanning and
embedding files), :mod:`audioemb._faiss` (faiss itself).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import _faiss, _index_build, _index_from
from . import audio as audio_io
from ._embed_store import is_embed_output
from ._index_build import model_info, model_sha
from ._index_build import same_model as _same_model
from ._index_embed import _Collected, _embed_files, _plan_add, _progress, _scan
from ._index_results import _TIE_DECIMALS, AddSummary, Hit, parse_query
from ._index_store import CURRENT, IndexStoreError, ModelMismatchError, Records, locked, open_version
from ._vectors import l2_normalize, live_vectors, take
from .registry import RETIRED
from .runtime import EmbeddingModel, load

__all__ = ["AddSummary", "Hit", "Index", "IndexStoreError", "ModelMismatchError", "parse_query"]


# ------------------------------------------------------------------------------------------------------ Index
class Index:
    """A searchable index of an audio collection (see the module docstring); ``Index.build`` or ``Index.load``."""

    def __init__(self, path: Path, cur: dict, meta, index, vectors: np.ndarray, model=None,
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
    def build(cls, root: str | os.PathLike | None, out: str | os.PathLike, model: str | EmbeddingModel | None = None,
              segments: float | None = None, index_type: str = "auto", from_embed: str | os.PathLike | None = None,
              overwrite: bool = False, memory_budget_gb: float = 4.0, target_recall: float = 0.95,
              batch_size: int = 32, seed: int = 0, progress: bool = False, device: str = "auto") -> Index:
        """Embed every audio file under ``root`` (or reuse an ``embed`` output folder ``from_embed``, local
        or Ray shards; ``root`` then defaults to the folder it records) and write a faiss index to ``out``.

        Args:
            segments: index windows of this many seconds instead of whole files.
            index_type: ``auto`` (by size and ``memory_budget_gb``), ``flat``, ``hnsw``, ``ivf`` or ``ivfpq``;
                above the budget auto picks ``ivfpq`` with its lists on disk.
            overwrite: replace an existing index at ``out`` (as a new version, readers keep working).
            target_recall: nprobe / efSearch are raised until recall@10 vs exact search reaches this.
        """
        out = Path(out)
        if root is None and from_embed is None:
            raise ValueError("give the folder to embed, or from_embed")
        if segments is not None and segments <= 0:
            raise ValueError(f"segments must be a positive number of seconds, got {segments}")
        _index_build.check_out(out, overwrite)
        _index_build.check_type(index_type)
        unreadable: list = []
        links: list = []
        if from_embed is not None:
            if segments:
                raise ValueError("segments cannot be used with from_embed (embed outputs hold one vector per file)")
            m, files, file_of, spans, parts, emb_root = _index_from.embed_output(Path(from_embed), model, device)
            if root is not None and emb_root and Path(root).resolve() != Path(emb_root).resolve():
                _index_from.check_moved(files, Path(root), Path(from_embed), emb_root)
            root = root if root is not None else Path(emb_root or from_embed)
        else:
            m = model if isinstance(model, EmbeddingModel) else load(model, device=device)
            col = _Collected(m.embedding_dim)
            todo, unreadable, links = _scan(Path(root))
            if not todo and is_embed_output(Path(root)):
                raise IndexStoreError(f"{root} holds no audio files: it is an `audioemb embed` output folder; build "
                                      f"the index from it with --from {root} (Python: from_embed=)")
            with _progress(len(todo), progress) as step:
                for rec, spans, vecs in _embed_files(m, todo, segments, batch_size, step):
                    col.add(rec, spans, vecs)
            files, file_of, spans, parts = col.files, col.file_of, col.spans, col.vecs
        spans = np.asarray(spans, np.float64).reshape(-1, 2)
        _index_from.from_vectors(out, parts, files, file_of, spans[:, 0], spans[:, 1], model_info(m), root,
                                 overwrite, segments=segments, index_type=index_type, memory_budget_gb=memory_budget_gb,
                                 target_recall=target_recall, seed=seed, unreadable=unreadable, links=links)
        return cls.load(out, model=m, device=device)

    @classmethod
    def from_vectors(cls, out: str | os.PathLike, vectors: np.ndarray, files: list[dict], file_of, start, end,
                     model: str | EmbeddingModel, root: str | os.PathLike, segments: float | None = None,
                     index_type: str = "auto", memory_budget_gb: float = 4.0, target_recall: float = 0.95,
                     seed: int = 0, overwrite: bool = False) -> Index:
        """Index embeddings computed elsewhere by ``model``: segment ``i`` is ``[start[i], end[i]]`` seconds
        of ``files[file_of[i]]`` (dicts with at least ``path``, relative to ``root``), its vector
        ``vectors[i]``. A memory-mapped array is streamed, never loaded whole."""
        m = model if isinstance(model, EmbeddingModel) else load(model)
        _index_from.from_vectors(Path(out), [vectors], files, file_of, start, end, model_info(m), root, overwrite,
                                 segments=segments, index_type=index_type, memory_budget_gb=memory_budget_gb,
                                 target_recall=target_recall, seed=seed)
        return cls.load(out, model=m)

    @classmethod
    def merge(cls, sources: list[str | os.PathLike], out: str | os.PathLike, index_type: str = "auto",
              memory_budget_gb: float = 4.0, target_recall: float = 0.95, overwrite: bool = False) -> Index:
        """One index of every file of the indexes ``sources`` (one model, one segment length; e.g. built on
        several machines, or from shards of a collection), without embedding. Paths become relative to the
        sources' common folder; the merged index's type is chosen afresh for its size."""
        _index_from.merge(list(sources), Path(out), overwrite, index_type=index_type,
                          memory_budget_gb=memory_budget_gb, target_recall=target_recall)
        return cls.load(out)

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
                hint = "" if ref in RETIRED else "; give its folder with --model (Python: Index.load(..., model=))"
                raise IndexStoreError(f"{self.path} was built with model {self._meta.info['model']!r} from {ref}, "
                                      f"which cannot be loaded ({e}){hint}") from None
            self._model = self._checked(m)
        return self._model

    def _checked(self, model: str | EmbeddingModel) -> EmbeddingModel:
        m = model if isinstance(model, EmbeddingModel) else load(model)
        i = self._meta.info
        if not _same_model(m, i) or m.embedding_dim != i["dim"]:
            raise ModelMismatchError(
                f"{self.path} was built with model {i['model']!r} (sha256 {str(i['model_sha256'])[:12]}, dim "
                f"{i['dim']}); model {m.name!r} (sha256 {str(model_sha(m))[:12]}, dim {m.embedding_dim}) embeds "
                "differently, so its vectors cannot be searched here. Use the index's model or rebuild the index.")
        return m

    def disk_size(self) -> int:
        """Bytes of the committed version's files."""
        return sum((self.path / f).stat().st_size for f in set(self._cur["files"].values())) + \
            (self.path / CURRENT).stat().st_size

    def items(self, lazy: bool = False, rows: bool = True) -> tuple[np.ndarray, Sequence[dict]]:
        """Every live vector (N, D) and its {path, start, end, row}, in row order. With ``lazy`` nothing is
        read up front (indexes larger than memory): the vectors are a memory map or a row view that reads the
        rows sliced from it, the records a sequence that makes each when asked (``rows=False``: without
        ``row``)."""
        if lazy:
            return live_vectors(self._vectors, self._meta.rows), Records(self._meta, row=rows)
        return self._take(np.arange(len(self._meta.rows)))

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, list[dict]]:
        """At most ``n`` live vectors drawn at random (all of them, in row order, when there are no more than
        ``n``) and their records, as :meth:`items` gives them. Only the drawn rows are read from disk, so a map
        or a preview of an index larger than memory stays small."""
        live = len(self._meta.rows)
        if live <= n:
            return self.items()
        return self._take(np.sort(np.random.default_rng(seed).choice(live, n, replace=False)))

    def _take(self, pick: np.ndarray) -> tuple[np.ndarray, list[dict]]:
        m = self._meta
        rows = m.rows[pick]
        vecs = take(self._vectors, rows) if len(rows) < len(m.rows) else np.asarray(self._vectors[rows], np.float32)
        recs = [{"path": m.files[f]["path"], "start": float(a), "end": float(b), "row": int(r)}
                for r, f, a, b in zip(rows, m.file_of[pick], m.start[pick], m.end[pick])]
        return vecs, recs

    @property
    def files(self) -> list[dict]:
        """Every file of the collection: path, size, mtime_ns, duration_s, error."""
        return [dict(f) for f in self._meta.files]

    # -------------------------------------------------------------------------------------------------- search
    @property
    def _rerank(self) -> int:
        return int(self._meta.info["build_params"].get("rerank", 0))

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
            return self.model.encode(audio_io.read_range(path, start or 0.0, end, self.model.sample_rate))
        except audio_io.AudioError as e:  # name the query file, not the decoded range
            raise audio_io.AudioError(f"{path}@{start or 0:g}-{'' if end is None else f'{end:g}'}", e.reason) from None

    def search(self, query, k: int = 10, collapse: bool = True, sample_rate: int | None = None) -> list[Hit]:
        """The ``k`` nearest segments to ``query`` (see :meth:`embed_query`), best first.

        With ``collapse`` each file appears once, with its best segment. Among equal scores (copies of one
        recording) a query file of the collection comes first, then paths in order.
        """
        return self.search_vector(self.embed_query(query, sample_rate), k, collapse, prefer=self._own_path(query))

    def _own_path(self, query) -> str | None:
        """The collection path of a whole-file query inside the index's folder, else None."""
        if not isinstance(query, (str, os.PathLike)):
            return None
        path, start, end = parse_query(os.fspath(query))
        if start is not None or end is not None:
            return None
        try:
            rel = Path(path).resolve().relative_to(Path(self._meta.info["root"]))
        except (ValueError, OSError):
            return None
        return rel.as_posix()

    def search_vector(self, vector: np.ndarray, k: int = 10, collapse: bool = True,
                      prefer: str | None = None) -> list[Hit]:
        """Search with a pre-computed embedding of the index's model (its dimension is checked). Scores are
        cosine similarities (clipped to [-1, 1]); equal scores are ordered with ``prefer`` (a path) first,
        then by path."""
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
        q = l2_normalize(v)[None]
        kk = min(n, 4 * k)
        while True:
            scores, rows = _faiss.search(self._faiss, q, kk, self._vectors, self._rerank)
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
                                min(1.0, max(-1.0, float(score))), 0, int(row)))
            # ties (copies score the same to rounding): the query's own file first, then by path. A tie at the
            # k-th place is settled among all its candidates: done once the lowest score fetched is below it
            last = round(hits[k - 1].score, _TIE_DECIMALS) if len(hits) >= k else None
            if kk >= n or (last is not None and round(float(scores[0][-1]), _TIE_DECIMALS) < last):
                hits.sort(key=lambda h: (-round(h.score, _TIE_DECIMALS), h.path != prefer, h.path, h.start))
                return [replace(h, rank=i + 1) for i, h in enumerate(hits[:k])]
            kk = min(n, kk * 4)

    # ----------------------------------------------------------------------------------------------- update
    def add(self, root: str | os.PathLike | None = None, prune: bool = False, batch_size: int = 32,
            progress: bool = False, new_root: bool = False) -> AddSummary:
        """Embed files under ``root`` (default: the folder the index was built from; a merged index's, the
        folders of the indexes it merged, not all of their common folder) that are new, changed
        (size or mtime_ns differs) or failed before; a changed file's old vectors are removed. ``prune``
        also removes files no longer under ``root`` (never those under a folder that cannot be listed).
        Another folder than the index's is refused unless ``new_root`` makes it the index's folder.
        Atomic: a crash leaves the previous version."""
        given = root is not None
        root = Path(root) if given else Path(self._meta.info["root"])
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
            scanned, unreadable, links = _scan(root, None if given else old.info.get("folders"))
            todo, drop, added, gone_kept = _plan_add(old.files, scanned, unreadable, prune)
            unchanged = len(scanned) - len(todo)
            if not todo and not drop and not moved:
                return AddSummary(0, 0, 0, 0, unchanged, False, len(self), unreadable, gone_kept=gone_kept,
                                  links=links)
            col = _Collected(old.info["dim"])
            with _progress(len(todo), progress) as step:
                for rec, spans, vecs in _embed_files(model, todo, old.info["segments_s"], batch_size, step):
                    col.add(rec, spans, vecs)
            rebuilt = self._apply(col, sorted(drop))
        failed = sum(1 for f in col.files if f["error"])
        return AddSummary(added, len(todo) - added, len(drop) - (len(todo) - added), failed, unchanged, rebuilt,
                          len(self), unreadable, [f for f in col.files if f["error"] or f.get("warning")], gone_kept,
                          links)

    def _reload(self) -> None:
        cur, meta, index, vectors = open_version(self.path)
        self._cur, self._meta, self._faiss, self._vectors, self._seg_of_row = cur, meta, index, vectors, None
        if self._model is not None and not _same_model(self._model, meta.info):
            self._model = None  # rebuilt with another model meanwhile: load that one when needed

    def _apply(self, col: _Collected, drop: list[int]) -> bool:
        """Commit a new version without the files ``drop`` and with ``col``'s; True if rebuilt from scratch."""
        new, new_vecs = col.meta(self._meta.info, first_row=len(self._vectors))
        rebuilt = _index_build.update(self.path, self._cur, self._meta, self._faiss, self._vectors, new, new_vecs,
                                      drop)
        self._reload()
        return rebuilt
