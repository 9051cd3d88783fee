"""Regression tests of issue 15: nothing lost, nothing silently wrong (one test per defect; see docs/reliability.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from audioemb.cli import app
from typer.testing import CliRunner

import audioemb._embed_store as store
from audioemb.audio import AudioError, load, stream
from audioemb.embed import EmbedError, embed_folder, read_embeddings
from audioemb.index import Index, IndexStoreError, _same_model
from audioemb.modelfolder import ModelFolderError, identity, open_folder
from audioemb.runtime import load as load_model

runner = CliRunner()


def _cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def two(tmp_path, clip_paths):
    """An empty file that sorts before a good one."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.wav").write_bytes(b"")
    shutil.copy(next(p for p in clip_paths if p.name.startswith("speech_hello")), d / "b.wav")
    return d


# ------------------------------------------------------------------------------------------ defect 1
@pytest.mark.parametrize("segments", [None, 0.5])
def test_bad_file_before_good_one_in_a_chunk(two, tmp_path, tiny_model, segments):
    idx = Index.build(two, tmp_path / "i.idx", model=str(tiny_model), segments=segments)
    files = {f["path"]: f for f in idx.files}
    assert "empty" in files["a.wav"]["error"] and files["b.wav"]["error"] is None
    assert len(idx) >= 1 and idx.search(two / "b.wav", k=1)[0].path == "b.wav"
    shutil.copy(two / "b.wav", two / "c.wav")
    s = idx.add()
    assert s.added == 1 and s.failed == 1 and {h.path for h in idx.search(two / "b.wav", k=3)} == {"b.wav", "c.wav"}


def test_index_build_exit_code_counts_failures(two, tmp_path, tiny_model):
    for extra in ([], ["--segments", "0.5"]):
        r = _cli("index", "build", two, "-o", tmp_path / f"i{len(extra)}", "--model", tiny_model, "--no-progress",
                 *extra)
        assert r.exit_code == 1, r.output
        assert "failed: a.wav: empty file" in r.output and "indexed" in r.output


# ------------------------------------------------------------------------------------------ defect 2
def test_half_written_journal_is_discarded(clip_paths, tmp_path, tiny_model):
    out = tmp_path / "s"
    assert _cli("embed", clip_paths[0].parent, "-o", out, "--model", tiny_model, "--no-progress").exit_code == 0
    emb, recs = read_embeddings(out)
    (out / "manifest.jsonl.next").write_bytes((out / "manifest.jsonl").read_bytes()[:700])
    shutil.copy(out / "embeddings.npy", out / "embeddings.npy.part")
    e2, r2 = read_embeddings(out)  # readers ignore the incomplete journal
    assert r2 == recs and np.array_equal(e2, emb)
    r = _cli("embed", clip_paths[0].parent, "-o", out, "--model", tiny_model, "--no-progress")
    assert r.exit_code == 0, r.output
    assert not (out / "manifest.jsonl.next").exists() and not (out / "embeddings.npy.part").exists()
    assert read_embeddings(out)[1] == recs


@pytest.mark.parametrize("die_at", [1, 2, 3, 4, 5, 6])
def test_kill_at_each_step_of_the_merge(clip_paths, tmp_path, tiny_model, monkeypatch, die_at):
    """Killed before each of the merge's renames (embeddings.npy.part, manifest.jsonl.next, merge.json,
    embeddings.npy, manifest.jsonl) and before the clean-up of parts/ (6)."""
    out = tmp_path / "s"
    d = tmp_path / "c"
    d.mkdir()
    for p in clip_paths[:4]:
        shutil.copy(p, d / p.name)
    embed_folder(d, out, str(tiny_model), progress=False)
    for p in clip_paths[4:]:
        shutil.copy(p, d / p.name)
    full = tmp_path / "full"
    embed_folder(d, full, str(tiny_model), progress=False)
    real, n = os.replace, {"i": 0}

    def dying_replace(a, b):
        if os.path.basename(os.path.dirname(b)) != "parts":  # the merge's files, not the parts written before
            n["i"] += 1
            if n["i"] == die_at:
                raise KeyboardInterrupt("killed")
        real(a, b)

    def dying_clear(out):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(store.os, "replace", dying_replace)
    if die_at == 6:
        monkeypatch.setattr(store, "_clear_parts", dying_clear)
    with pytest.raises(KeyboardInterrupt):
        embed_folder(d, out, str(tiny_model), progress=False, flush_every=100)
    monkeypatch.undo()
    _, recs = read_embeddings(out)  # readable mid-way, nothing doubled
    assert len({r["path"] for r in recs}) == len(recs)
    s = embed_folder(d, out, str(tiny_model), progress=False)
    assert s.embedded + s.kept == len(clip_paths)
    e1, r1 = read_embeddings(full)
    e2, r2 = read_embeddings(out)
    assert [r["path"] for r in r1] == [r["path"] for r in r2]
    np.testing.assert_allclose(e1, e2, atol=1e-6)
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.npy", "info.json", "manifest.jsonl"]


# ------------------------------------------------------------------------------------------ defect 3
@pytest.fixture()
def odd(tmp_path):
    d = tmp_path / "odd"
    d.mkdir()
    sf.write(d / "huge.wav", np.full(32000, 3e38, np.float32), 16000, subtype="FLOAT")
    x = np.sin(np.arange(32000) / 10).astype(np.float32)
    x[::3] = np.nan
    sf.write(d / "third_nan.wav", x, 16000, subtype="FLOAT")
    return d


def test_non_finite_embedding_is_an_error_and_nan_samples_a_warning(odd, tmp_path, tiny_model):
    r = _cli("embed", odd, "-o", tmp_path / "o", "--model", tiny_model, "--no-progress")
    assert r.exit_code == 1, r.output
    emb, recs = read_embeddings(tmp_path / "o")
    by = {x["path"]: x for x in recs}
    assert by["huge.wav"]["row"] is None and "non-finite" in by["huge.wav"]["error"]
    assert by["third_nan.wav"]["error"] is None and "NaN or Inf" in by["third_nan.wav"]["warning"]
    assert np.isfinite(emb).all() and "warning: third_nan.wav" in r.output
    idx = Index.build(odd, tmp_path / "i", model=str(tiny_model))
    assert len(idx) == 1 and "non-finite" in {f["path"]: f for f in idx.files}["huge.wav"]["error"]
    with pytest.raises(AudioError, match=r"huge\.wav.*non-finite"):
        idx.search(odd / "huge.wav")
    with pytest.raises(ValueError, match="NaN"):
        idx.search_vector(np.full(idx.info["dim"], np.nan, np.float32))
    r = _cli("search", tmp_path / "i", odd / "huge.wav")
    assert r.exit_code == 2 and "non-finite" in r.output


# ------------------------------------------------------------------------------------------ defect 4
def test_embed_refuses_another_folder_and_keeps_vanished_files(clip_paths, tmp_path, tiny_model):
    out = tmp_path / "out"
    embed_folder(clip_paths[0].parent, out, str(tiny_model), progress=False)
    empty = tmp_path / "e"
    empty.mkdir()
    r = _cli("embed", empty, "-o", out, "--model", tiny_model, "--no-progress")
    assert r.exit_code == 2 and "--new-root" in r.output
    s = embed_folder(empty, out, str(tiny_model), progress=False, new_root=True)
    assert s.removed == 0 and s.gone_kept == len(clip_paths) and "--prune" in s.line()
    assert len(read_embeddings(out)[1]) == len(clip_paths)
    s = embed_folder(empty, out, str(tiny_model), progress=False, prune=True)
    assert s.removed == len(clip_paths) and read_embeddings(out)[1] == []


def _unlistable(monkeypatch, name):
    real = os.scandir

    def scandir(p="."):
        if os.fspath(p).endswith(os.sep + name):
            raise PermissionError(13, "Permission denied", os.fspath(p))
        return real(p)

    monkeypatch.setattr(os, "scandir", scandir)


def test_unreadable_subfolder_is_reported_and_never_pruned(clip_paths, tmp_path, tiny_model, monkeypatch):
    d = tmp_path / "c"
    (d / "locked").mkdir(parents=True)
    for i, p in enumerate(clip_paths):
        shutil.copy(p, d / ("locked" if i < 6 else "") / p.name)
    out = tmp_path / "out"
    embed_folder(d, out, str(tiny_model), progress=False)
    idx = Index.build(d, tmp_path / "i", model=str(tiny_model))
    _unlistable(monkeypatch, "locked")
    r = _cli("embed", d, "-o", out, "--model", tiny_model, "--no-progress", "--prune")
    assert r.exit_code == 1 and "locked/: cannot list this folder (Permission denied)" in r.output
    assert len(read_embeddings(out)[1]) == len(clip_paths)
    s = idx.add(prune=True)
    assert s.removed == 0 and s.unreadable == [("locked", "Permission denied")]
    assert len(idx.files) == len(clip_paths)


def test_index_add_refuses_another_folder(clip_paths, two, tmp_path, tiny_model):
    idx = Index.build(clip_paths[0].parent, tmp_path / "i", model=str(tiny_model))
    r = _cli("index", "add", tmp_path / "i", two, "--prune", "--no-progress")
    assert r.exit_code == 2 and "--new-root" in r.output
    assert len(Index.load(tmp_path / "i").files) == len(clip_paths)
    s = idx.add(two, new_root=True)
    assert s.added == 2 and idx.info["root"] == str(two.resolve()) and len(idx.files) == len(clip_paths) + 2


# ------------------------------------------------------------------------------------------ defect 5
def _edited(tiny_model, tmp_path, **change):
    m = tmp_path / "edited"
    shutil.copytree(tiny_model, m)
    cfg = json.loads((m / "config.json").read_text())
    cfg.update(change)
    (m / "config.json").write_text(json.dumps(cfg))
    return m


@pytest.mark.parametrize("change", [{"sample_rate": 8000}, {"embedding_dim": 7}, {"name": "other"},
                                   {"encoder": {"type": "framenet"}}])
def test_edited_config_is_refused(tiny_model, tmp_path, change):
    with pytest.raises(ModelFolderError, match="edited"):
        load_model(_edited(tiny_model, tmp_path, **change))
    r = _cli("embed", tmp_path, "-o", tmp_path / "o", "--model", tmp_path / "edited")
    assert r.exit_code == 2 and "config.json was edited" in r.output


def test_descriptive_fields_may_change_and_identity_is_recorded(tiny_model, tmp_path, two):
    m = load_model(_edited(tiny_model, tmp_path, metrics={"anything": 1}))
    assert m.folder.identity == load_model(tiny_model).folder.identity
    idx = Index.build(two, tmp_path / "i", model=m)
    assert idx.info["model_id"] == m.folder.identity
    # an index written before identities were recorded is matched by its ONNX sha256
    legacy = {k: v for k, v in idx.info.items() if k != "model_id"}
    assert _same_model(m, legacy) and not _same_model(m, {**legacy, "model_sha256": "0" * 64})


def test_shipped_models_record_their_identity():
    from audioemb.registry import list_models, pretrained_dir

    for name in list_models():
        cfg = json.loads((pretrained_dir() / name / "config.json").read_text())
        assert cfg.get("identity_sha256") == identity(cfg), name
        open_folder(pretrained_dir() / name, verify=())


# ------------------------------------------------------------------------------------------ defect 6
def test_bad_layer_writes_nothing(two, tmp_path, tiny_model):
    out = tmp_path / "o"
    r = _cli("embed", two, "-o", out, "--model", tiny_model, "--layer", "7", "--no-progress")
    assert r.exit_code == 2 and "layer must be" in r.output and not out.exists()
    assert _cli("embed", two, "-o", out, "--model", tiny_model, "--no-progress").exit_code == 1  # a.wav is empty


def test_output_that_is_a_file(two, tmp_path, tiny_model):
    f = tmp_path / "file"
    f.write_text("x")
    r = _cli("embed", two, "-o", f, "--model", tiny_model, "--no-progress")
    assert r.exit_code == 2 and "is not a folder" in r.output and isinstance(r.exception, (SystemExit, type(None)))
    r = _cli("index", "build", two, "-o", f, "--model", tiny_model, "--no-progress")
    assert r.exit_code == 2 and "not an audioemb index" in r.output


def test_torch_backend_without_torch_is_one_line(two, tmp_path, tiny_model):
    code = (f"import sys; sys.modules['torch'] = None; sys.argv = ['audioemb', 'embed', {str(two)!r}, '-o', "
            f"{str(tmp_path / 'o')!r}, '--model', {str(tiny_model)!r}, '--backend', 'torch']; "
            "from audioemb.cli import app; app()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("error: backend='torch' needs torch, which is not installed: "
                                "pip install 'audioemb[train]'")


def test_already_an_index_names_the_flag(two, tmp_path, tiny_model):
    Index.build(two, tmp_path / "i", model=str(tiny_model))
    r = _cli("index", "build", two, "-o", tmp_path / "i", "--model", tiny_model)
    assert r.exit_code == 2 and "--force" in r.output and "overwrite to" not in r.output


def test_odd_file_names(clip_paths, tmp_path, tiny_model):
    d = tmp_path / "names"
    d.mkdir()
    bad_utf8 = os.fsdecode(b"caf\xe9.wav")
    shutil.copy(clip_paths[0], os.path.join(d, bad_utf8))
    shutil.copy(clip_paths[1], d / "two\nlines.wav")
    s = embed_folder(d, tmp_path / "o", str(tiny_model), progress=False)
    assert s.embedded == 2 and s.failed == 0
    for seg in (None, 0.5):
        idx = Index.build(d, tmp_path / f"i{seg}", model=str(tiny_model), segments=seg)
        assert sorted(f["path"] for f in idx.files) == ["caf\\xe9.wav", "two\nlines.wav"]
        assert all(f["error"] is None for f in idx.files)
    r = _cli("search", tmp_path / "iNone", d / "two\nlines.wav", "-k", "2")
    assert r.exit_code == 0 and "two\\nlines.wav" in r.output and "caf\\xe9.wav" in r.output
    assert all("lines.wav" not in line or "two\\n" in line for line in r.output.splitlines())


def test_bad_queries_do_not_abort_the_others(two, tmp_path, tiny_model):
    Index.build(two, tmp_path / "i", model=str(tiny_model))
    r = _cli("search", tmp_path / "i", two, "--json")
    assert r.exit_code == 1 and "failed: " in r.output and "a.wav: empty file" in r.output
    assert '"path": "b.wav"' in r.output
    # regression: --json left the failed query out (its reason went to stderr only)
    answers = json.loads(r.stdout)
    assert [("error" in a, "hits" in a) for a in answers] == [(True, False), (False, True)]
    assert answers[0]["query"].endswith("a.wav") and "empty file" in answers[0]["error"]
    empty = tmp_path / "none"
    empty.mkdir()
    r = _cli("search", tmp_path / "i", empty)
    assert r.exit_code == 2 and "no audio files" in r.output


# ------------------------------------------------------------------------------- bad input that passed
def test_truncated_files_are_reported(clip_paths, tmp_path):
    for name in ("speech_hello_hedgewars.wav", "music_tabla_sonicpi.mp3", "speech_dutch_fillets.ogg"):
        src = clip_paths[0].parent / name
        ext = src.suffix
        t = tmp_path / f"t{ext}"
        t.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
        report = {}
        assert sum(len(b) for b in stream(t, 16000, report=report)) > 0
        assert any(w.startswith("truncated") for w in report["warnings"]), ext
        report = {}
        list(stream(src, 16000, report=report))
        assert report["warnings"] == [], src
    flac = next(p for p in clip_paths if p.suffix == ".flac")
    (tmp_path / "t.flac").write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    with pytest.raises(AudioError, match="truncated or corrupt"):
        load(tmp_path / "t.flac")


def test_text_named_mp3_gets_a_readable_message(tmp_path):
    (tmp_path / "t.mp3").write_text("hello, this is text")
    with pytest.raises(AudioError) as e:
        load(tmp_path / "t.mp3")
    assert "not in an audio format" in e.value.reason and "hello" in e.value.reason
    assert "pipe" not in e.value.reason


def test_encode_errors_skip(two, tiny_model, odd):
    m = load_model(tiny_model)
    items = [two / "b.wav", two / "a.wav", odd / "huge.wav", odd / "third_nan.wav"]
    with pytest.raises(AudioError, match=r"a\.wav"):
        m.encode(items)
    emb, errors = m.encode(items, errors="skip")
    assert emb.shape == (4, m.embedding_dim)
    assert np.isfinite(emb[[0, 3]]).all() and np.isnan(emb[[1, 2]]).all()
    assert [(e.index, os.path.basename(e.source)) for e in errors] == [(1, "a.wav"), (2, "huge.wav")]
    np.testing.assert_allclose(emb[0], m.encode(two / "b.wav"), atol=1e-6)
    frames, errors = m.encode(items, errors="skip", output="frames")
    assert frames[1] is None and frames[2] is None and len(frames[0]) > 0 and len(errors) == 2


def test_embed_output_folder_of_something_else_is_refused(two, tmp_path, tiny_model):
    other = tmp_path / "docs"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    with pytest.raises(EmbedError, match="not an `audioemb embed` output"):
        embed_folder(two, other, str(tiny_model), progress=False)
    with pytest.raises(IndexStoreError):
        Index.build(two, other, model=str(tiny_model))
