"""``audioemb.index`` and the ``index`` / ``search`` commands, on the real example clips and a tiny model."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import soxr
from audioemb.cli import app
from typer.testing import CliRunner

import audioemb._index_store as store
from audioemb import _faiss
from audioemb.embed import embed_folder
from audioemb.index import Index, IndexStoreError, ModelMismatchError, parse_query
from audioemb.modelfolder import write_config
from audioemb.runtime import load

runner = CliRunner()


@pytest.fixture()
def collection(tmp_path, clip_paths):
    """The example clips, plus the piano clip converted to FLAC at 22.05 kHz (an exact duplicate in sound)."""
    d = tmp_path / "collection"
    (d / "sub").mkdir(parents=True)
    for i, p in enumerate(clip_paths):
        shutil.copy(p, d / ("sub" if i % 2 else "") / p.name)
    x, sr = sf.read(clip_paths[0], dtype="float32")
    sf.write(d / "sub" / "piano_copy.flac", soxr.resample(x, sr, 22050), 22050)
    return d


def _rel(collection, clip):
    return next(p for p in collection.rglob(clip.name)).relative_to(collection).as_posix()


def _versioned(folder):
    return sorted(p.name for p in folder.iterdir() if store._VERSIONED.match(p.name))


def test_each_clip_finds_itself_and_the_duplicate_is_top(collection, tmp_path, tiny_model, clip_paths):
    idx = Index.build(collection, tmp_path / "idx", model=str(tiny_model))
    m = load(tiny_model)
    assert len(idx) == len(clip_paths) + 1 and idx.info["index_type"] == "flat"
    assert idx.info["recall@10"] == 1.0 and idx.info["model_sha256"] == m.folder.config["files"]["model.onnx"]
    vecs, items = idx.items()
    for v, it in zip(vecs, items):  # whole-file vectors are the model's clip embeddings
        np.testing.assert_allclose(v, m.encode(collection / it["path"]), atol=1e-5)
        assert it["start"] == 0.0 and it["end"] > 0
    for clip in clip_paths:
        hits = idx.search(collection / _rel(collection, clip), k=3)
        assert [h.rank for h in hits] == [1, 2, 3] and len({h.path for h in hits}) == 3
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        if clip == clip_paths[0]:
            assert {h.path for h in hits[:2]} == {_rel(collection, clip), "sub/piano_copy.flac"}
            assert hits[1].score > hits[2].score
        else:
            assert hits[0].path == _rel(collection, clip)
    dup = idx.search(collection / "sub" / "piano_copy.flac", k=2)
    assert {h.path for h in dup} == {_rel(collection, clip_paths[0]), "sub/piano_copy.flac"}
    assert (tmp_path / "idx" / "meta.sqlite").exists() and (tmp_path / "idx" / "vectors.npy").exists()


def test_segments_query_lands_in_the_right_place(tmp_path, tiny_model, clips16k):
    d = tmp_path / "long"
    d.mkdir()
    long = np.concatenate(clips16k)
    sf.write(d / "long.wav", long, 16000)
    rng = np.random.default_rng(0)
    sf.write(d / "noise.wav", 0.1 * rng.standard_normal(3 * 16000).astype(np.float32), 16000)
    sf.write(d / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000).astype(np.float32), 16000)
    idx = Index.build(d, tmp_path / "idx", model=str(tiny_model), segments=2.0)
    _, items = idx.items()
    spans = [(it["start"], it["end"]) for it in items if it["path"] == "long.wav"]
    dur = len(long) / 16000
    assert spans[0] == (0.0, 2.0) and spans[-1][1] == pytest.approx(dur, abs=1e-3)
    assert len(spans) == int(np.ceil(dur / 2.0)) - (dur % 2.0 < 0.2)
    exact = idx.search(f"{d / 'long.wav'}@4-6", k=1)[0]  # exactly one indexed segment
    assert (exact.path, exact.start, exact.end) == ("long.wav", 4.0, 6.0) and exact.score == pytest.approx(1, abs=1e-5)
    for a, b in [(4.3, 5.7), (8.2, 9.6), (10.1, 11.9)]:
        for q in (f"{d / 'long.wav'}@{a}-{b}", (d / "long.wav", a, b)):
            hit = idx.search(q, k=3)[0]
            assert hit.path == "long.wav" and hit.start < b and hit.end > a, (a, b, hit)
    assert len(idx.search(d / "tone.wav", k=10)) == 3  # collapsed: one hit per file
    every = idx.search(d / "tone.wav", k=10, collapse=False)
    assert len(every) == 10 and sum(h.path == "long.wav" for h in every) >= 7


def test_parse_query():
    assert parse_query("a/b.wav@1.5-3") == ("a/b.wav", 1.5, 3.0)
    assert parse_query("b.wav@2-") == ("b.wav", 2.0, None)
    assert parse_query("plain.wav") == ("plain.wav", None, None)


def test_add_new_changed_and_pruned_files(collection, tmp_path, tiny_model, clip_paths):
    out = tmp_path / "idx"
    idx = Index.build(collection, out, model=str(tiny_model))
    n0 = len(idx)
    shutil.copy(clip_paths[1], collection / "new.mp3")
    changed = collection / _rel(collection, clip_paths[4])
    x, sr = sf.read(changed)
    sf.write(changed, x[: len(x) // 3], sr)
    os.utime(changed, ns=(1, 1))
    s = idx.add(collection)
    assert (s.added, s.changed, s.removed, s.failed) == (1, 1, 0, 0)
    assert len(idx) == n0 + 1 == len(Index.load(out)) == idx._faiss.ntotal  # the old vector left faiss too
    vecs, items = idx.items()
    paths = [it["path"] for it in items]
    assert len(paths) == len(set(paths)) and "new.mp3" in paths
    row = paths.index(changed.relative_to(collection).as_posix())
    np.testing.assert_allclose(vecs[row], load(tiny_model).encode(changed), atol=1e-5)
    assert idx.search(collection / "new.mp3", k=1)[0].score == pytest.approx(1.0, abs=1e-5)
    before = (out / "current.json").read_text()
    again = idx.add(collection)
    assert (again.added, again.changed, again.removed) == (0, 0, 0) and (out / "current.json").read_text() == before
    (collection / "new.mp3").unlink()
    kept = idx.add(collection)
    assert kept.removed == 0 and len(idx) == n0 + 1  # without prune, vanished files stay
    assert kept.gone_kept == 1 and "1 files no longer in the folder were kept: use --prune" in kept.line()  # said
    pruned = idx.add(collection, prune=True)
    assert pruned.removed == 1 and pruned.gone_kept == 0 and len(idx) == n0
    assert len(_versioned(out)) <= 6  # only the current and previous versions' files are kept


def test_auto_and_forced_types_on_a_tiny_collection(collection, tmp_path, tiny_model, clip_paths):
    for i, kind in enumerate(("ivf", "ivfpq", "hnsw")):
        idx = Index.build(collection, tmp_path / kind, model=str(tiny_model), index_type=kind)
        assert idx.info["index_type"] == kind and len(idx) == len(clip_paths) + 1
        assert 0 < idx.info["recall@10"] <= 1
        if kind == "ivf":
            assert idx.info["build_params"]["nlist"] == 1  # 9 points: one list, never a training error
        hits = idx.search(collection / _rel(collection, clip_paths[2]), k=3)
        assert len(hits) == 3
        if kind != "ivfpq":  # PQ codes are approximate
            assert hits[0].path == _rel(collection, clip_paths[2])
        changed = collection / _rel(collection, clip_paths[3])
        os.utime(changed, ns=(i + 1, i + 1))  # HNSW cannot remove ids: add rebuilds its graph
        assert idx.add(collection).changed == 1 and len(idx) == len(clip_paths) + 1 == idx._faiss.ntotal
        if kind != "ivfpq":
            assert idx.search(changed, k=1)[0].path == changed.relative_to(collection).as_posix()


def test_type_choice_and_params():
    assert _faiss.choose_type(100, 512) == "flat"
    assert _faiss.choose_type(50_000, 512) == "hnsw"
    assert _faiss.choose_type(1_500_000, 512) == "ivf"
    assert _faiss.choose_type(5_000_000, 512) == "ivfpq"  # 10 GB of float32 > 4 GiB budget
    assert _faiss.choose_type(5_000_000, 512, memory_budget_gb=16) == "ivf"
    assert _faiss.default_params("ivf", 1_000_000, 64)["nlist"] == 4000
    assert _faiss.default_params("ivf", 1000, 64)["nlist"] == 1000 // 39
    assert _faiss.default_params("ivf", 5, 64)["nlist"] == 1
    pq = _faiss.default_params("ivfpq", 50, 512)
    assert 512 % pq["m"] == 0 and 2 ** pq["nbits"] <= 50


def test_recall_is_measured_and_tuned():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((50, 32))
    x = centres[rng.integers(0, 50, 4000)] + 0.3 * rng.standard_normal((4000, 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ids = np.arange(len(x))
    for kind in ("ivf", "hnsw"):
        params = _faiss.default_params(kind, len(x), 32)
        index = _faiss.build(x, ids, kind, params)
        recall, _ = _faiss.tune(index, kind, params, x, ids, target=0.95)
        assert recall >= 0.95
        assert recall == _faiss.recall_at_k(index, x, ids)  # the tuned setting stays applied
    params = dict(_faiss.default_params("ivf", len(x), 32), nprobe=1)
    index = _faiss.build(x, ids, "ivf", params)
    assert _faiss.recall_at_k(index, x, ids) < 0.9  # one list probed: recall is measured, not assumed


def test_other_model_is_refused(collection, tmp_path, tiny_model, tiny_frame_model):
    out = tmp_path / "idx"
    Index.build(collection, out, model=str(tiny_model))
    with pytest.raises(ModelMismatchError, match=r"tiny-ntt\.test"):
        Index.load(out, model=str(tiny_frame_model))
    idx = Index.load(out)
    with pytest.raises(ModelMismatchError, match="64-d"):
        idx.search(np.ones(32, np.float32))
    other = load(tiny_frame_model).encode(collection / "sub" / "piano_copy.flac")
    assert other.shape == (64,)  # same dimension: only the recorded sha256 tells the models apart
    emb = tmp_path / "emb"
    embed_folder(collection, emb, str(tiny_frame_model), progress=False)
    with pytest.raises(ModelMismatchError, match="embedded with model"):
        Index.build(collection, tmp_path / "idx2", model=str(tiny_model), from_embed=emb)


def test_an_index_of_a_retired_model_says_to_rebuild(collection, tmp_path, tiny_model):
    """An index whose shipped model was replaced by a retrain names the replacement, and does not suggest
    passing another model, whose vectors would not match."""
    out = tmp_path / "idx"
    Index.build(collection, out, model=str(tiny_model))
    idx = Index.load(out)
    idx._meta.info["model_ref"] = "simsiam-s.debian"  # as an index built before 2026-11-29 records it
    with pytest.raises(IndexStoreError, match=r"replaced by 'simsiam-s\.debian2'.*rebuilding") as e:
        _ = idx.model
    assert "pass model=" not in str(e.value)
    emb = tmp_path / "emb"  # an embed output written with it says the same when an index is built from it
    embed_folder(collection, emb, str(tiny_model), progress=False)
    info = json.loads((emb / "info.json").read_text())
    info.pop("model_ref")  # as an output written before model_ref was recorded: the name only
    (emb / "info.json").write_text(json.dumps({**info, "model": "simsiam-s.debian"}))
    with pytest.raises(IndexStoreError, match=r"replaced by 'simsiam-s\.debian2'.*rebuilding") as e:
        Index.build(None, tmp_path / "idx2", from_embed=emb)
    assert "pass its folder" not in str(e.value)


def test_an_own_model_named_like_a_shipped_or_retired_one_is_loaded_from_its_folder(collection, tmp_path,
                                                                                    tiny_model):
    """A user's retrain of a v1 recipe on corpus v1 is named like a retired model (``swav-s.debian``), and one of
    the default's recipe like the default: an index built from its embed output loads the recorded folder, not
    the name (regression: the name gave the retirement message, or the shipped default and a sha mismatch)."""
    for name in ("swav-s.debian", "npc-s.debian"):
        own = tmp_path / name
        shutil.copytree(tiny_model, own)
        write_config(own, {**json.loads((own / "config.json").read_text()), "name": name})
        emb = tmp_path / f"emb-{name}"
        embed_folder(collection, emb, str(own), progress=False)
        assert json.loads((emb / "info.json").read_text())["model_ref"] == str(own.resolve())
        idx = Index.build(None, tmp_path / f"idx-{name}", from_embed=emb)
        rows = [json.loads(x) for x in (emb / "manifest.jsonl").read_text().splitlines()]
        assert idx.model.name == name and len(idx) == sum(r["row"] is not None for r in rows) > 0
        shutil.rmtree(own)  # the folder gone: the message names it and says to pass one
        with pytest.raises(IndexStoreError, match=rf"from {re.escape(str(own.resolve()))}.*pass its folder"):
            Index.build(None, tmp_path / f"idx2-{name}", from_embed=emb)


def test_build_from_embed_output(collection, tmp_path, tiny_model):
    emb = tmp_path / "emb"
    embed_folder(collection, emb, str(tiny_model), progress=False)
    a = Index.build(collection, tmp_path / "a", model=str(tiny_model), from_embed=emb)
    b = Index.build(collection, tmp_path / "b", model=str(tiny_model))
    (va, ia), (vb, ib) = a.items(), b.items()
    order = np.argsort([it["path"] for it in ib])
    assert [it["path"] for it in ia] == sorted(it["path"] for it in ib)
    np.testing.assert_allclose(va, vb[order], atol=1e-5)
    moved = tmp_path / "moved"  # the collection moved: the same files elsewhere are accepted
    shutil.copytree(collection, moved)
    assert Index.build(moved, tmp_path / "c", from_embed=emb, model=str(tiny_model)).info["root"] == str(moved)
    # regression: another folder was accepted, and its files were played for the vectors of the first one's
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(next(p for p in sorted(collection.rglob("*")) if p.is_file()), other / "x.wav")
    with pytest.raises(IndexStoreError, match=r"files are not in .*other as embedded: .*missing"):
        Index.build(other, tmp_path / "d", model=str(tiny_model), from_embed=emb)
    assert not (tmp_path / "d").exists()


class Crash(Exception):
    pass


def test_crash_during_add_leaves_the_last_index(collection, tmp_path, tiny_model, clip_paths, monkeypatch):
    out = tmp_path / "idx"
    idx = Index.build(collection, out, model=str(tiny_model))
    n0, reader = len(idx), Index.load(out)
    shutil.copy(clip_paths[0], collection / "new.wav")

    def crash(path, meta):
        raise Crash("killed while writing the metadata")

    monkeypatch.setattr(store, "write_sqlite", crash)
    with pytest.raises(Crash):
        idx.add(collection)
    monkeypatch.undo()
    assert len(Index.load(out)) == n0 and len(idx) == n0
    assert reader.search(collection / "new.wav", k=1)[0].score == pytest.approx(1.0, abs=1e-5)  # the piano clip
    assert idx.add(collection).added == 1 and len(Index.load(out)) == n0 + 1
    cur = json.loads((out / "current.json").read_text())
    assert set(_versioned(out)) == set(cur["files"].values()) | set(cur["previous"].values())
    for _ in range(3):  # readers of old versions keep working while writers replace files
        os.utime(collection / "new.wav", ns=(time.time_ns(), time.time_ns()))
        idx.add(collection)
    assert [h.rank for h in reader.search(collection / "new.wav", k=3)] == [1, 2, 3]


def test_crash_during_build_leaves_nothing(collection, tmp_path, tiny_model, monkeypatch):
    def crash(path, meta):
        raise Crash

    monkeypatch.setattr(store, "write_sqlite", crash)
    with pytest.raises(Crash):
        Index.build(collection, tmp_path / "idx", model=str(tiny_model))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["collection"]
    monkeypatch.undo()
    Index.build(collection, tmp_path / "idx", model=str(tiny_model))
    with pytest.raises(IndexStoreError, match="already an index"):
        Index.build(collection, tmp_path / "idx", model=str(tiny_model))
    with pytest.raises(IndexStoreError, match="not an audioemb index"):
        Index.build(collection, collection, model=str(tiny_model))


def test_add_waits_for_the_writer_lock(collection, tmp_path, tiny_model, clip_paths):
    out = tmp_path / "idx"
    idx = Index.build(collection, out, model=str(tiny_model))
    shutil.copy(clip_paths[0], collection / "new.wav")
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("s", idx.add(collection)))
    t.start()
    time.sleep(0.5)
    assert t.is_alive() and len(Index.load(out)) == len(clip_paths) + 1  # readers don't wait
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    t.join(30)
    assert result["s"].added == 1


def test_cli_build_info_search_add(collection, tmp_path, tiny_model, clip_paths):
    out = tmp_path / "idx"
    r = runner.invoke(app, ["index", "build", str(collection), "-o", str(out), "--model", str(tiny_model),
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    assert f"indexed {len(clip_paths) + 1} vectors" in r.output and "flat" in r.output
    r = runner.invoke(app, ["index", "info", str(out)])
    assert r.exit_code == 0 and "flat" in r.output and "recall@10" in r.output and "tiny-ntt.test" in r.output
    info = json.loads(runner.invoke(app, ["index", "info", str(out), "--json"]).output)
    assert info["count"] == len(clip_paths) + 1 and info["recall@10"] == 1.0 and info["size_bytes"] > 0
    q = collection / _rel(collection, clip_paths[3])
    r = runner.invoke(app, ["search", str(out), str(q), "-k", "3"])
    assert r.exit_code == 0 and clip_paths[3].name in r.output and "score" in r.output
    res = json.loads(runner.invoke(app, ["search", str(out), str(q), "-k", "3", "--json"]).output)
    assert res[0]["query"] == str(q) and res[0]["hits"][0]["path"] == _rel(collection, clip_paths[3])
    assert [h["rank"] for h in res[0]["hits"]] == [1, 2, 3]
    ranged = json.loads(runner.invoke(app, ["search", str(out), f"{q}@0.1-0.6", "--json", "-k", "1"]).output)
    bad = runner.invoke(app, ["search", str(out), f"{q}@abc"])  # regression: "no such file" before
    assert bad.exit_code == 2 and "'abc' is not a time range: give START-END in seconds" in bad.output
    assert len(ranged[0]["hits"]) == 1
    folder = json.loads(runner.invoke(app, ["search", str(out), str(collection / "sub"), "--json"]).output)
    assert len(folder) == len(list((collection / "sub").iterdir()))
    shutil.copy(clip_paths[0], collection / "new.wav")
    r = runner.invoke(app, ["index", "add", str(out), "--no-progress"])
    assert r.exit_code == 0 and "added 1 files" in r.output
    r = runner.invoke(app, ["search", str(tmp_path), str(q)])
    assert r.exit_code == 2 and "not an audioemb index" in r.output
    r = runner.invoke(app, ["index", "build", str(collection), "-o", str(out), "--model", str(tiny_model)])
    assert r.exit_code == 2 and "already an index" in r.output


def test_build_folders_of_dead_processes_are_removed(tmp_path):
    import os

    from audioemb._index_build import remove_stale_builds

    out = tmp_path / "idx"
    dead, live = tmp_path / ".idx.building-99999999", tmp_path / f".idx.building-{os.getpid()}"
    for d in (dead, live):
        d.mkdir()
    remove_stale_builds(out)
    assert not dead.exists() and live.exists()


def test_among_exact_copies_the_query_file_comes_first(collection, tmp_path, tiny_model, clip_paths):
    """Regression: a file with byte-identical copies, searched with k=1, could return a copy (ties came in
    faiss's row order, reversed), and scores read 1.0000001."""
    src = collection / _rel(collection, clip_paths[1])
    for name in ("a_copy.wav", "zz_copy.wav", "sub/b_copy.wav", "sub/m_copy.wav"):
        shutil.copy(src, collection / name)
    idx = Index.build(collection, tmp_path / "idx", model=str(tiny_model))
    for query in [src, *(collection / n for n in ("zz_copy.wav", "sub/b_copy.wav"))]:
        hits = idx.search(query, k=1)
        assert hits[0].path == query.relative_to(collection).as_posix() and hits[0].rank == 1
        five = idx.search(query, k=5)
        assert [h.rank for h in five] == [1, 2, 3, 4, 5] and all(h.score <= 1.0 for h in five)
        assert [h.path for h in five[1:]] == sorted(h.path for h in five[1:])  # the other copies, by path


def test_a_moved_model_folder_is_given_with_model(collection, tmp_path, tiny_model, clip_paths):
    """Regression: after the model's folder moved, `search` and `index add` could not be used: the error said
    to pass `model=` to `Index.load`, a Python hint, and neither command had a --model option."""
    own = tmp_path / "my-model"
    shutil.copytree(tiny_model, own)
    Index.build(collection, tmp_path / "idx", model=str(own))
    moved = tmp_path / "models" / "my-model"
    moved.parent.mkdir()
    own.rename(moved)
    q = str(collection / _rel(collection, clip_paths[0]))
    r = runner.invoke(app, ["search", str(tmp_path / "idx"), q])
    assert r.exit_code == 2 and "give its folder with --model" in r.output, r.output
    r = runner.invoke(app, ["search", str(tmp_path / "idx"), q, "--model", str(moved), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    shutil.copy(clip_paths[1], collection / "new.wav")
    r = runner.invoke(app, ["index", "add", str(tmp_path / "idx"), "--model", str(moved), "--no-progress"])
    assert r.exit_code == 0 and "added 1 files" in r.output, r.output
