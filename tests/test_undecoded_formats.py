"""Audio in formats libsndfile cannot decode (AAC in MP4, WMA, ...) fails with its reason and a way out; it was
passed over in silence ("embedded 1 files ... (1 in the folder)" for a folder of two songs)."""

from __future__ import annotations

import json
import shutil

import pytest
from audioemb.cli import app
from typer.testing import CliRunner

from audioemb.audio import AudioError, info, is_audio_path, is_listed_audio
from audioemb.embed import embed_folder
from audioemb.index import Index
from audioemb.train.folders import scan

runner = CliRunner()
# the first box of an iTunes AAC file: libsndfile reads no audio in it
MP4_HEAD = b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isomiso2\x00\x00\x00\x08free" + bytes(64)


@pytest.fixture()
def songs(tmp_path, clip_paths):
    """A WAV, an AAC .m4a, a WMA (uppercase extension) and a .m4a whose contents are a WAV."""
    d = tmp_path / "songs"
    d.mkdir()
    good = next(p for p in clip_paths if p.name.startswith("speech_hello"))
    shutil.copy(good, d / "a.wav")
    (d / "b.m4a").write_bytes(MP4_HEAD)
    (d / "c.WMA").write_bytes(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11" + bytes(64))
    shutil.copy(good, d / "d.m4a")
    (d / "notes.txt").write_text("not audio, not listed")
    return d


def test_an_undecodable_format_names_itself_and_the_way_out(songs):
    assert not is_audio_path("x.m4a") and is_listed_audio("x.m4a") and is_listed_audio("X.WMA")
    assert not is_listed_audio("notes.txt")
    with pytest.raises(AudioError, match=r"b\.m4a: AAC or ALAC in MP4 \(\.m4a\) is a format libsndfile cannot "
                                         r"decode; convert it .*ffmpeg -i 'b\.m4a' 'b\.flac'"):
        info(songs / "b.m4a")
    assert info(songs / "d.m4a").frames > 0  # its contents are a WAV: decoded as such


def test_embed_reports_them_as_failed(songs, tmp_path, tiny_model):
    s = embed_folder(songs, tmp_path / "out", str(tiny_model), progress=False)
    assert (s.total, s.embedded, s.failed) == (4, 2, 2)
    rows = {r["path"]: r for r in map(json.loads, (tmp_path / "out" / "manifest.jsonl").read_text().splitlines())}
    assert "cannot decode" in rows["b.m4a"]["error"] and "Windows Media Audio" in rows["c.WMA"]["error"]
    assert rows["a.wav"]["error"] is None and rows["d.m4a"]["row"] is not None
    r = runner.invoke(app, ["embed", str(songs), "-o", str(tmp_path / "out2"), "--model", str(tiny_model),
                            "--no-progress"])
    assert r.exit_code == 1 and "b.m4a" in r.output and "ffmpeg" in r.output


def test_index_and_search_queries_list_them(songs, tmp_path, tiny_model):
    idx = Index.build(songs, tmp_path / "i", model=str(tiny_model), progress=False)
    assert {f["path"] for f in idx.files if f["error"]} == {"b.m4a", "c.WMA"} and len(idx) == 2
    q = tmp_path / "q"
    q.mkdir()
    shutil.copy(songs / "b.m4a", q / "query.m4a")
    r = runner.invoke(app, ["search", str(tmp_path / "i"), str(q)])
    assert r.exit_code == 2 and "query.m4a" in r.output and "cannot decode" in r.output, r.output


def test_training_folders_list_them(songs):
    assert [rel for _, rel in scan([songs])] == ["songs/a.wav", "songs/b.m4a", "songs/c.WMA", "songs/d.m4a"]
