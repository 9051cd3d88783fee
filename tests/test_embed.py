"""``audioemb embed`` through typer's runner: bad files, re-runs, changes, frames, interruption, resume."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
from audioemb.cli import app
from typer.testing import CliRunner

import audioemb.embed as embed_mod
from audioemb._embed_store import recover
from audioemb.embed import EmbedError, embed_folder, read_embeddings
from audioemb.runtime import load

runner = CliRunner()
BAD = {"empty.wav": "empty", "not_audio.mp3": "not a readable", "all_nan.wav": "NaN", "zero.wav": "no audio frames"}


@pytest.fixture()
def collection(tmp_path, clip_paths):
    d = tmp_path / "collection"
    (d / "sub dir").mkdir(parents=True)
    for i, p in enumerate(clip_paths):
        shutil.copy(p, d / ("sub dir" if i % 2 else "") / p.name)
    shutil.copy(clip_paths[0], d / "sub dir" / "ñame with spaces & ünicode.wav")
    (d / "empty.wav").write_bytes(b"")
    (d / "not_audio.mp3").write_text("hello")
    sf.write(d / "all_nan.wav", np.full(800, np.nan, np.float32), 8000, subtype="FLOAT")
    sf.write(d / "zero.wav", np.zeros(0, np.float32), 16000)
    (d / "notes.txt").write_text("ignored: not an audio extension")
    return d


def _manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_cli_embed_reports_bad_files_and_goes_on(collection, tmp_path, tiny_model, clip_paths):
    out = tmp_path / "out"
    r = runner.invoke(app, ["embed", str(collection), "-o", str(out), "--model", str(tiny_model), "--no-progress"])
    assert r.exit_code == 1, r.output
    n_good = len(clip_paths) + 1
    assert r.output.strip().splitlines()[-1].startswith(f"embedded {n_good} files, kept 0, failed {len(BAD)}")
    emb = np.load(out / "embeddings.npy")
    recs = _manifest(out)
    assert emb.shape == (n_good, load(tiny_model).embedding_dim) and emb.dtype == np.float32
    assert len(recs) == n_good + len(BAD)
    by_path = {r["path"]: r for r in recs}
    for name, reason in BAD.items():
        assert by_path[name]["row"] is None and reason in by_path[name]["error"]
        assert name in r.output  # each failure is named on stderr
    rows = sorted(r["row"] for r in recs if r["row"] is not None)
    assert rows == list(range(n_good))
    m = load(tiny_model)
    for rec in recs:
        if rec["row"] is not None:
            np.testing.assert_allclose(emb[rec["row"]], m.encode(collection / rec["path"]), atol=1e-5)
            assert rec["duration_s"] > 0 and rec["sample_rate"] > 0 and rec["error"] is None
    assert "sub dir/ñame with spaces & ünicode.wav" in by_path


def test_rerun_keeps_changes_and_removals(collection, tmp_path, tiny_model):
    out = tmp_path / "out"
    first = embed_folder(collection, out, str(tiny_model), progress=False)
    before = read_embeddings(out)
    again = embed_folder(collection, out, str(tiny_model), progress=False)
    assert again.embedded == 0 and again.kept == first.embedded and again.failed == len(BAD)
    after = read_embeddings(out)
    np.testing.assert_array_equal(before[0], after[0])
    # change one file, add one, remove one
    victim = next(collection.rglob("music_piano*.wav"))
    x, sr = sf.read(victim)
    sf.write(victim, x[: len(x) // 2], sr)
    os.utime(victim, ns=(1, 1))
    shutil.copy(victim, collection / "new.wav")
    gone = next(p for p in (collection / "sub dir").iterdir() if p.suffix == ".ogg")
    gone.unlink()
    third = embed_folder(collection, out, str(tiny_model), progress=False)
    assert third.embedded == 2 and third.removed == 1 and third.kept == first.embedded - 2
    emb, recs = read_embeddings(out)
    paths = [r["path"] for r in recs]
    assert "new.wav" in paths and gone.relative_to(collection).as_posix() not in paths
    assert len(paths) == len(set(paths)) and emb.shape[0] == sum(r["row"] is not None for r in recs)


def test_other_model_refused(collection, tmp_path, tiny_model, tiny_frame_model):
    out = tmp_path / "out"
    embed_folder(collection, out, str(tiny_model), progress=False)
    with pytest.raises(EmbedError, match="written with"):
        embed_folder(collection, out, str(tiny_frame_model), progress=False)
    r = runner.invoke(app, ["embed", str(collection), "-o", str(out), "--model", str(tiny_frame_model)])
    assert r.exit_code == 2 and "written with" in r.output


def test_frames_written(collection, tmp_path, tiny_model):
    out = tmp_path / "out"
    embed_folder(collection, out, str(tiny_model), frames=True, progress=False)
    m = load(tiny_model)
    for rec in _manifest(out):
        if rec["row"] is None:
            assert "frames" not in rec
            continue
        z = np.load(out / rec["frames"])
        ref = m.encode(collection / rec["path"], output="frames")
        np.testing.assert_allclose(z["embeddings"], ref.embeddings, atol=1e-5)
        np.testing.assert_allclose(z["timestamps"], ref.timestamps)


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs (not even the final merge)."""


def test_interrupted_run_resumes_without_loss_or_duplicates(collection, tmp_path, tiny_model, monkeypatch):
    clean = tmp_path / "clean"
    embed_folder(collection, clean, str(tiny_model), progress=False)
    out = tmp_path / "out"
    real_add, real_flush, calls = embed_mod._Job.add, embed_mod._Job.flush, {"n": 0}

    def dying_add(self, rec, emb):
        real_add(self, rec, emb)
        calls["n"] += 1
        if calls["n"] == 5:
            self.dead = True
            raise Killed

    def flush(self):
        if getattr(self, "dead", False):  # the process is gone: no final flush, no merge
            raise Killed
        real_flush(self)

    monkeypatch.setattr(embed_mod._Job, "add", dying_add)
    monkeypatch.setattr(embed_mod._Job, "flush", flush)
    with pytest.raises(Killed):
        embed_folder(collection, out, str(tiny_model), progress=False, flush_every=2)
    monkeypatch.undo()
    assert not (out / "embeddings.npy").exists()
    parts = list((out / "parts").glob("part-*.jsonl"))
    assert len(parts) == 2  # files 1-4 were saved in two parts; the 5th was in flight and is redone
    partial_emb, partial_recs = read_embeddings(out)  # OUT is readable mid-way
    assert len(partial_recs) == 4 and partial_emb.shape[0] == sum(r["row"] is not None for r in partial_recs)
    resumed = embed_folder(collection, out, str(tiny_model), progress=False)
    assert resumed.kept == sum(r["error"] is None for r in partial_recs)
    e1, r1 = read_embeddings(clean)
    e2, r2 = read_embeddings(out)
    assert [r["path"] for r in r1] == [r["path"] for r in r2]
    np.testing.assert_allclose(e1, e2, atol=1e-6)
    assert not (out / "parts").exists()


def test_merge_journal_rolls_forward(collection, tmp_path, tiny_model):
    out = tmp_path / "out"
    embed_folder(collection, out, str(tiny_model), progress=False)
    emb, recs = read_embeddings(out)
    # a crash after embeddings.npy was replaced but before manifest.jsonl.next was renamed
    os.replace(out / "manifest.jsonl", out / "manifest.jsonl.next")
    (out / "manifest.jsonl").write_text("")
    e2, r2 = read_embeddings(out)
    np.testing.assert_array_equal(emb, e2)
    assert r2 == recs
    recover(out)  # a journal of an older version (no merge.json): its rows match, so it is rolled forward
    assert _manifest(out) == recs and not (out / "manifest.jsonl.next").exists()


@pytest.mark.parametrize(("flag", "want"), [([], None), (["--no-lanes", "--workers", "1"], False)])
def test_cli_embed_lanes_flag(collection, tmp_path, tiny_model, monkeypatch, flag, want):
    """``--lanes/--no-lanes`` reaches embed_folder (None: its default); both ways give the same rows."""
    seen = {}
    real = embed_mod.embed_folder

    def spy(*args, **kwargs):
        seen["lanes"] = kwargs.get("lanes")
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_mod, "embed_folder", spy)
    out = tmp_path / "out"
    args = ["embed", str(collection), "-o", str(out), "--model", str(tiny_model), "--no-progress"]
    r = runner.invoke(app, [*args, *flag])
    assert r.exit_code == 1 and seen["lanes"] is want, r.output
    ref = embed_folder(collection, tmp_path / "ref", str(tiny_model), progress=False, workers=0)
    (e, rows), (e_ref, rows_ref) = read_embeddings(out), read_embeddings(tmp_path / "ref")
    assert rows == rows_ref and ref.failed == len(BAD)
    np.testing.assert_allclose(e, e_ref, atol=1e-5)


def test_symlinked_folders_are_named_not_passed_over(tmp_path, tiny_model, clip_paths):
    """Regression: a symlinked sub-folder was skipped in silence ("3 in the folder"); it is still not
    followed (loops, files outside the folder), and embed and index say so, naming it."""
    from audioemb.index import Index

    elsewhere, root = tmp_path / "elsewhere", tmp_path / "root"
    elsewhere.mkdir()
    (root / "real").mkdir(parents=True)
    shutil.copy(clip_paths[0], root / "real" / "a.wav")
    shutil.copy(clip_paths[1], elsewhere / "b.wav")
    os.symlink(elsewhere, root / "linked")
    os.symlink(root, root / "real" / "loop")
    s = embed_folder(root, tmp_path / "out", str(tiny_model), progress=False)
    assert s.total == 1 and s.links == ["linked", "real/loop"]
    assert "2 symlinked folders not followed (linked/, real/loop/): give each as a folder of its own" in s.line()
    r = runner.invoke(app, ["index", "build", str(root), "-o", str(tmp_path / "idx"), "-m", str(tiny_model),
                            "--no-progress"])
    assert r.exit_code == 0 and "2 symlinked folders not followed (linked/, real/loop/)" in r.output, r.output
    assert Index.load(tmp_path / "idx").add().links == ["linked", "real/loop"]


def test_a_folder_without_audio_is_an_error_not_zero_files(tmp_path, tiny_model):
    """Regression: `embed` of a folder with no audio (a wrong path, most often) said "embedded 0 files" and
    exited 0; now it is one line, exit code 2, and nothing is written."""
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    (empty / "notes" / "readme.txt").write_text("no audio here")
    r = runner.invoke(app, ["embed", str(empty), "-o", str(tmp_path / "out"), "-m", str(tiny_model), "--no-progress"])
    assert r.exit_code == 2 and f"{empty}: no audio files in this folder (recursively)" in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_a_second_run_into_the_same_output_stops_at_once(collection, tmp_path, tiny_model):
    """Regression: two `embed` runs into one output folder both embedded every file (the work done twice);
    the second now stops with one line while the first holds the folder, and leaves no lock file behind."""
    import fcntl

    out = tmp_path / "out"
    embed_folder(collection, out, str(tiny_model), progress=False)
    fd = os.open(out, os.O_RDONLY)  # another run holding the folder
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(EmbedError, match="is being written by another `audioemb embed` run"):
            embed_folder(collection, out, str(tiny_model), progress=False)
    finally:
        os.close(fd)
    assert embed_folder(collection, out, str(tiny_model), progress=False).kept > 0
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.npy", "info.json", "manifest.jsonl"]
