"""Indexes larger than their memory budget: IVF-PQ with on-disk inverted lists and re-ranking, ``add`` on
them, ``index build --from`` an embed output, and merging indexes."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from audioemb.cli import app
from typer.testing import CliRunner

from audioemb import _faiss
from audioemb._vectors import RowView, take
from audioemb.embed import embed_folder
from audioemb.index import Index, IndexStoreError, ModelMismatchError
from audioemb.runtime import load

runner = CliRunner()
N, PER_FILE = 20_000, 100


def _vectors(n, dim, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((200, dim)).astype(np.float32)
    x = c[rng.integers(0, 200, n)] + rng.standard_normal((n, dim)).astype(np.float32) * 0.5
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _files(n_files, prefix="f"):
    return [{"path": f"{prefix}{i:05d}.wav", "size": 1, "mtime_ns": 1, "duration_s": PER_FILE * 1.0}
            for i in range(n_files)]


@pytest.fixture(scope="module")
def big(tmp_path_factory, tiny_model):
    """An index of N synthetic vectors (as if 1 s segments of N / PER_FILE files) over a 1 MiB budget."""
    d = tmp_path_factory.mktemp("big")
    v = _vectors(N, load(tiny_model).embedding_dim)
    np.save(d / "v.npy", v)
    seg = np.arange(N)
    Index.from_vectors(d / "idx", np.load(d / "v.npy", mmap_mode="r"), _files(N // PER_FILE), seg // PER_FILE,
                       seg % PER_FILE * 1.0, seg % PER_FILE + 1.0, model=str(tiny_model), root=d,
                       memory_budget_gb=2**-10)
    return d, v


def test_over_budget_is_ivfpq_with_lists_on_disk_and_reranked(big, tmp_path):
    d, v = big
    idx = Index.load(d / "idx")
    i = idx.info
    assert i["index_type"] == "ivfpq" and i["on_disk"] and i["build_params"]["rerank"] == _faiss.RERANK
    assert i["recall@10"] >= i["target_recall"] == 0.95  # measured against exact search at build
    cur = json.loads((d / "idx" / "current.json").read_text())
    assert cur["files"]["ivfdata"] == "index.000001.ivfdata" and (d / "idx" / cur["files"]["ivfdata"]).exists()
    # PQ codes alone lose neighbours; re-scoring rerank x k candidates with the stored vectors recovers them
    live = np.arange(N)
    plain = _faiss.recall_at_k(idx._faiss, idx._vectors, live, n_queries=300)
    reranked = _faiss.recall_at_k(idx._faiss, idx._vectors, live, n_queries=300, rerank=_faiss.RERANK)
    assert plain < reranked and reranked >= 0.95
    hits = idx.search_vector(v[123], k=3, collapse=False)
    assert hits[0].row == 123 and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert (hits[0].path, hits[0].start, hits[0].end) == ("f00001.wav", 23.0, 24.0)
    moved = tmp_path / "moved"  # the .ivfdata is found beside the index, wherever the folder goes
    shutil.copytree(d / "idx", moved)
    assert Index.load(moved).search_vector(v[5], k=1, collapse=False)[0].row == 5


def test_from_vectors_refuses_bad_shapes(tmp_path, tiny_model):
    dim = load(tiny_model).embedding_dim
    with pytest.raises(ModelMismatchError, match=f"{dim}-d"):
        Index.from_vectors(tmp_path / "i", np.zeros((3, 7), np.float32), _files(1), [0, 0, 0], [0, 1, 2],
                           [1, 2, 3], model=str(tiny_model), root=tmp_path)
    with pytest.raises(ValueError, match="file_of must index"):
        Index.from_vectors(tmp_path / "i", _vectors(3, dim), _files(1), [0, 0, 1], [0, 1, 2], [1, 2, 3],
                           model=str(tiny_model), root=tmp_path)
    assert not (tmp_path / "i").exists()


def test_add_to_an_on_disk_index_keeps_readers_and_versions(big, tmp_path, tiny_model, clip_paths):
    d, v = big
    out = tmp_path / "idx"
    shutil.copytree(d / "idx", out)
    reader = Index.load(out)
    col = tmp_path / "sounds"  # the index's root holds real clips now: add embeds them into the same lists
    col.mkdir()
    for p in clip_paths[:3]:
        shutil.copy(p, col / p.name)
    idx = Index.load(out)
    s = idx.add(col, new_root=True)
    assert s.added == 3 and not s.rebuilt and len(idx) == N + 3
    cur = json.loads((out / "current.json").read_text())
    assert cur["files"]["ivfdata"] == "index.000002.ivfdata" and cur["previous"]["ivfdata"] == "index.000001.ivfdata"
    assert idx.info["on_disk"] and idx.info["recall@10"] >= 0.95
    assert idx.search(col / clip_paths[1].name, k=1)[0].path == clip_paths[1].name
    assert reader.search_vector(v[7], k=1, collapse=False)[0].row == 7  # the old version still reads
    old_row = idx.search(col / clip_paths[1].name, k=1)[0].row
    os.utime(col / clip_paths[1].name, ns=(1, 1))  # changed: its old vector leaves the on-disk lists
    s = idx.add(col)
    assert s.changed == 1 and not s.rebuilt and len(idx) == N + 3
    hits = idx.search(col / clip_paths[1].name, k=20, collapse=False)
    assert hits[0].row > old_row and old_row not in {h.row for h in hits}
    assert sorted(p.name for p in out.glob("*.ivfdata")) == ["index.000002.ivfdata", "index.000003.ivfdata"]


def test_build_from_embed_output_and_merge(clip_paths, tmp_path, tiny_model):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for i, p in enumerate(clip_paths):
        shutil.copy(p, (a if i % 2 else b) / p.name)
    embed_folder(a, tmp_path / "ea", str(tiny_model), progress=False)
    r = runner.invoke(app, ["index", "build", "--from", str(tmp_path / "ea"), "-o", str(tmp_path / "ia"),
                            "--model", str(tiny_model), "--no-progress"])
    assert r.exit_code == 0, r.output
    ia = Index.load(tmp_path / "ia")
    assert ia.info["root"] == str(a.resolve()) and len(ia) == len(list(a.iterdir()))
    Index.build(b, tmp_path / "ib", model=str(tiny_model))
    r = runner.invoke(app, ["index", "merge", str(tmp_path / "ia"), str(tmp_path / "ib"), "-o", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert "merged 2 indexes" in r.output
    merged = Index.load(tmp_path / "m")
    assert len(merged) == len(clip_paths) and merged.info["root"] == str(tmp_path.resolve())
    q = b / clip_paths[0].name
    hit = merged.search(q, k=1)[0]
    assert hit.path == f"b/{clip_paths[0].name}" and hit.score == pytest.approx(1.0, abs=1e-5)
    # regression: `add` scanned the whole common folder, taking in unrelated audio beside the merged folders
    (tmp_path / "unrelated").mkdir()
    shutil.copy(clip_paths[0], tmp_path / "unrelated" / "x.wav")
    shutil.copy(clip_paths[0], a / "new.wav")
    s = merged.add()
    assert (s.added, s.gone_kept) == (1, 0) and "a/new.wav" in [f["path"] for f in merged.files]
    assert not [f for f in merged.files if f["path"].startswith("unrelated/")]
    with pytest.raises(IndexStoreError, match="in both"):
        Index.merge([tmp_path / "ia", tmp_path / "ia"], tmp_path / "m2")
    r = runner.invoke(app, ["index", "build", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--from" in r.output


def test_rows_of_memory_maps_and_views(tmp_path):
    a = _vectors(1000, 8)
    np.save(tmp_path / "a.npy", a)
    m = np.load(tmp_path / "a.npy", mmap_mode="r")
    rows = np.array([5, 3, 989, 3, 0])
    np.testing.assert_array_equal(take(m, rows), a[rows])  # os.pread of whole rows
    np.testing.assert_array_equal(take(m[10:], rows), a[10:][rows])  # a view: its own offset
    np.testing.assert_array_equal(RowView(m, rows)[1:4], a[rows[1:4]])


def test_only_the_faiss_module_imports_faiss():
    import audioemb.cli

    users = sorted(p.name for d in (audioemb.__file__, audioemb.cli.__file__) for p in Path(d).parent.rglob("*.py")
                   if re.search(r"^\s*(import faiss|from faiss)", p.read_text(), re.M))
    assert users == ["_faiss.py"]


def test_sample_reads_only_the_drawn_rows(big):
    d, v = big
    idx = Index.load(d / "idx")
    read = []

    class Counting:  # the memory-mapped vectors, counting the rows each read takes
        def __init__(self, a):
            self.a = a

        def __len__(self):
            return len(self.a)

        def __getitem__(self, rows):
            read.append(len(np.atleast_1d(rows)))
            return self.a[rows]

    idx._vectors = Counting(idx._vectors)
    vecs, recs = idx.sample(500, seed=3)
    assert read == [500] and vecs.shape == (500, v.shape[1])
    rows = [r["row"] for r in recs]
    assert rows == sorted(set(rows)) and np.allclose(vecs, v[rows])
    assert recs[0]["path"] == f"f{rows[0] // PER_FILE:05d}.wav" and recs[0]["start"] == rows[0] % PER_FILE
    assert [r["row"] for r in idx.sample(500, seed=3)[1]] == rows  # the same draw for the same seed
    all_vecs, all_recs = idx.items()
    small = idx.sample(N)  # no more than asked for: everything, in row order, as items() gives it
    assert small[1] == all_recs and np.array_equal(small[0], all_vecs)


def test_cluster_an_index_without_reading_it_whole(big, tmp_path, monkeypatch):
    from audioemb import cluster as cl
    from audioemb.cluster_report import cluster_collection

    d, v = big
    real_items = Index.items

    def items(self, lazy=False, rows=True):
        if not lazy:
            pytest.fail("clustering read every vector of the index")
        vecs, recs = real_items(self, lazy, rows)
        assert not isinstance(recs, list)  # records made as they are read
        return vecs, recs

    monkeypatch.setattr(Index, "items", items)
    monkeypatch.setattr(cl, "ASSIGN_CHUNK", 4096)
    s = cluster_collection(d / "idx", tmp_path / "cl", k=8)
    assert s["n"] == N and sum(s["sizes"]) == N
    with open(tmp_path / "cl" / "assignments.csv") as f:
        rows = f.read().splitlines()
    assert len(rows) == N + 1 and rows[1].startswith("f00000.wav,0.000,1.000,")
    ref = cl.kmeans(v, 8, seed=0)  # the same clustering of the vectors held in memory
    assert cl.cluster_scores(ref.labels, [int(r.split(",")[3]) for r in rows[1:]])["ari"] > 0.9  # 1.0 here
