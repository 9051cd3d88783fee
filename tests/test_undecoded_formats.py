"""Audio in formats libsndfile cannot decode (AAC in MP4, WMA, ...): decoded by PyAV (the [av] extra), and
without it a failure with its reason and a way out. It was passed over in silence ("embedded 1 files ... (1 in
the folder)" for a folder of two songs)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from audioemb.cli import app
from typer.testing import CliRunner

from audioemb import _av
from audioemb.audio import AudioError, info, is_audio_path, is_listed_audio, load
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


def test_an_undecodable_format_names_itself_and_the_way_out(songs, monkeypatch):
    assert not is_audio_path("x.m4a") and is_listed_audio("x.m4a") and is_listed_audio("X.WMA")
    assert not is_listed_audio("notes.txt")
    assert info(songs / "d.m4a").frames > 0  # its contents are a WAV: decoded as such
    if _av.available():  # a broken file: FFmpeg's reason
        with pytest.raises(AudioError, match=r"b\.m4a: not a readable AAC or ALAC in MP4 file \(FFmpeg: "):
            info(songs / "b.m4a")
    monkeypatch.setattr(_av, "available", lambda: False)  # the plain install
    with pytest.raises(AudioError, match=r"b\.m4a: AAC or ALAC in MP4 \(\.m4a\) is a format libsndfile cannot "
                                         r"decode: pip install 'audioemb\[av\]' .*ffmpeg -i 'b\.m4a' 'b\.flac'"):
        info(songs / "b.m4a")


def test_embed_reports_them_as_failed(songs, tmp_path, tiny_model):
    s = embed_folder(songs, tmp_path / "out", str(tiny_model), progress=False)
    assert (s.total, s.embedded, s.failed) == (4, 2, 2)
    rows = {r["path"]: r for r in map(json.loads, (tmp_path / "out" / "manifest.jsonl").read_text().splitlines())}
    assert "AAC or ALAC in MP4" in rows["b.m4a"]["error"] and "Windows Media Audio" in rows["c.WMA"]["error"]
    assert rows["a.wav"]["error"] is None and rows["d.m4a"]["row"] is not None
    r = runner.invoke(app, ["embed", str(songs), "-o", str(tmp_path / "out2"), "--model", str(tiny_model),
                            "--no-progress"])
    assert r.exit_code == 1 and "b.m4a" in r.output and "AAC or ALAC in MP4" in r.output


def test_index_and_search_queries_list_them(songs, tmp_path, tiny_model):
    idx = Index.build(songs, tmp_path / "i", model=str(tiny_model), progress=False)
    assert {f["path"] for f in idx.files if f["error"]} == {"b.m4a", "c.WMA"} and len(idx) == 2
    q = tmp_path / "q"
    q.mkdir()
    shutil.copy(songs / "b.m4a", q / "query.m4a")
    r = runner.invoke(app, ["search", str(tmp_path / "i"), str(q)])
    assert r.exit_code == 2 and "query.m4a" in r.output and "AAC or ALAC in MP4" in r.output, r.output


def test_training_folders_list_them(songs):
    assert [rel for _, rel in scan([songs])] == ["songs/a.wav", "songs/b.m4a", "songs/c.WMA", "songs/d.m4a"]


def _encode(src, path, fmt: str, codec: str, rate: int | None = None) -> None:
    """``src`` (a WAV) encoded with FFmpeg through PyAV."""
    import av
    import soundfile as sf

    x, sr = sf.read(src, dtype="float32", always_2d=True)
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=rate or sr)
        s.layout = "mono" if x.shape[1] == 1 else "stereo"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.T), format="fltp", layout=s.layout)
        frame.sample_rate = sr
        for packet in [*s.encode(frame), *s.encode(None)]:
            c.mux(packet)


@pytest.mark.parametrize("name, fmt, codec, rate", [("song.m4a", "ipod", "aac", None),
                                                    ("song.aac", "adts", "aac", None),
                                                    ("song.webm", "webm", "libopus", 48000)])
def test_pyav_decodes_them_like_the_original(clip_paths, tmp_path, tiny_model, name, fmt, codec, rate):
    """With the [av] extra, an AAC or Opus encoding of a clip decodes to the clip (lossy: close, not equal),
    without a truncation warning, and embeds next to it."""
    pytest.importorskip("av")
    from audioemb.runtime import load as load_model

    src = next(p for p in clip_paths if p.name.startswith("speech_hello"))
    _encode(src, tmp_path / name, fmt, codec, rate)
    want, got = load(src, 16000), load(tmp_path / name, 16000)
    assert abs(len(got) - len(want)) <= 0.05 * len(want) + 2048  # priming and padding
    n = min(len(got), len(want))
    lag = int(np.argmax(np.correlate(got[:n], want[:n][2048:n - 2048], "valid")))
    a, b = got[lag:lag + n - 4096], want[2048:n - 2048]
    assert np.corrcoef(a, b)[0, 1] > 0.9, "the decoded audio is not the clip"
    m = load_model(str(tiny_model))
    e1, e2 = m.encode(str(src)), m.encode(str(tmp_path / name))
    assert float(e1 @ e2) > 0.95
    s = embed_folder(tmp_path, tmp_path / "out", m, progress=False)
    assert s.embedded == 1 and s.failed == 0 and s.warned == 0


def test_serve_transcodes_them_for_the_browser(clip_paths, tmp_path):
    pytest.importorskip("av")
    import soundfile as sf

    from audioemb.serve.media import Transcoder, browser_media_type, peaks

    src = next(p for p in clip_paths if p.name.startswith("speech_hello"))
    _encode(src, tmp_path / "song.m4a", "ipod", "aac")
    assert browser_media_type(tmp_path / "song.m4a") is None
    out, mime = Transcoder(tmp_path / "cache").get(tmp_path / "song.m4a")
    assert mime == "audio/flac" and abs(sf.info(out).duration - sf.info(src).duration) < 0.1
    lo, hi = peaks(tmp_path / "song.m4a", 0.0, 0.0, 40)
    assert lo.shape == (40,) and (hi > lo).any()


def test_pyav_reader_rewinds_exactly(clip_paths, tmp_path):
    """A backward seek (the serve page's waveform of a segment) reopens the stream: the samples are those of
    the first pass, which seeking an AAC decoder (overlapping frames) would not give."""
    pytest.importorskip("av")
    src = next(p for p in clip_paths if p.name.startswith("speech_hello"))
    _encode(src, tmp_path / "song.m4a", "ipod", "aac")
    with _av.AVReader(tmp_path / "song.m4a") as r:
        full = r.read(1 << 24)
        assert r.read(10).shape == (0, r.channels) and abs(len(full) - r.frames) <= 2048
        assert r.seek(100) == 100 and np.array_equal(r.read(1000), full[100:1100])
        assert r.seek(3000) == 3000 and np.array_equal(r.read(10), full[3000:3010])


def test_appledouble_files_are_not_listed(songs, tmp_path, tiny_model):
    """macOS writes ``._name`` beside each file copied to a foreign disk (its metadata, magic 0x00051607): they
    are not audio, and a Mac-made archive would otherwise report one failure per recording."""
    (songs / "._a.wav").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64))
    assert not is_listed_audio("._a.wav") and is_audio_path("._a.wav")  # the corpus recipe is unchanged
    s = embed_folder(songs, tmp_path / "out", str(tiny_model), progress=False)
    assert s.total == 4 and "._a.wav" not in (tmp_path / "out" / "manifest.jsonl").read_text()
    assert "songs/._a.wav" not in [rel for _, rel in scan([songs])]
