"""The shared encode path: ``encode_stream`` inline and with decoder processes, ``scan_folder``'s order."""

from __future__ import annotations

import os
import shutil
import signal
import time

import numpy as np
import pytest
import soundfile as sf

from audioemb.embed import embed_folder, read_embeddings
from audioemb.runtime import load
from audioemb.scan import scan_folder

from .procs import child_pids


@pytest.fixture()
def mixed(tmp_path, clip_paths):
    d = tmp_path / "mixed"
    d.mkdir()
    for p in clip_paths:
        shutil.copy(p, d / p.name)
    (d / "empty.wav").write_bytes(b"")
    (d / "text.mp3").write_text("not audio")
    return d


def test_decoder_processes_give_the_inline_results(mixed, tiny_model):
    m = load(tiny_model)
    paths = sorted(mixed.iterdir())
    inline = list(m.encode_stream(enumerate(paths), ordered=True, frames=True))
    pooled = list(m.encode_stream(enumerate(paths), ordered=True, frames=True, workers=2))
    assert [r.key for r in pooled] == list(range(len(paths)))
    for a, b in zip(inline, pooled):
        assert a.error == b.error and a.duration_s == b.duration_s and a.warning == b.warning
        if a.error is None:
            np.testing.assert_allclose(a.clip, b.clip, atol=1e-6)
            np.testing.assert_allclose(a.frames.embeddings, b.frames.embeddings, atol=1e-6)
            assert a.header == b.header
    errors = {paths[r.key].name: r.error for r in pooled if r.error}
    assert set(errors) == {"empty.wav", "text.mp3"} and "empty" in errors["empty.wav"]
    key, clip, err = pooled[[p.name for p in paths].index("text.mp3")]  # (key, clip, frames | error)
    assert key == [p.name for p in paths].index("text.mp3") and clip is None and "not a readable audio file" in err


def test_segments_cover_the_file(clip_paths, tiny_model):
    m = load(tiny_model)
    [r] = list(m.encode_stream([("x", clip_paths[0])], segments=0.5))
    assert r.key == "x" and r.vectors.shape == (len(r.spans), m.embedding_dim)
    assert r.spans[0][0] == 0.0 and abs(r.spans[-1][1] - r.duration_s) < 1e-3
    np.testing.assert_allclose(np.linalg.norm(r.vectors, axis=1), 1.0, atol=1e-5)


def _decoders() -> list[int]:
    """Process ids of this process's decoder workers."""
    return child_pids(os.getpid(), b"_decode_pool")


def test_decoder_processes_take_over_once_started(clip_paths, tiny_model, monkeypatch):
    """Regression: the main process decoded inline until a worker was ready, but only looked for the worker's
    "ready" message after the last source had been handed out, so every file was decoded inline."""
    import audioemb._decode_pool as pool

    inline: list[int] = []
    real = pool.decode

    def slow_inline(seq, source, spec, inline_=True):  # only the main process's copy is patched
        inline.append(seq)
        time.sleep(0.05)
        yield from real(seq, source, spec)

    monkeypatch.setattr(pool, "decode", slow_inline)
    m = load(tiny_model)
    paths = list(clip_paths) * 8
    got = list(m.encode_stream(enumerate(paths), ordered=True, workers=1))
    assert [r.key for r in got] == list(range(len(paths))) and all(r.error is None for r in got)
    assert len(inline) < len(paths) // 2, f"{len(inline)} of {len(paths)} decoded in the main process"


@pytest.mark.parametrize("lanes", [False, True])
def test_a_killed_decoder_fails_only_its_file(mixed, tiny_model, lanes):
    """A decoder process (or lane) killed mid-job (a crash in a codec, the OOM killer): the file it was on
    gets an error naming the cause, a fresh process takes the rest, every other file is embedded."""
    m = load(tiny_model)
    paths = sorted(mixed.iterdir()) * 6
    ref = {r.key: r for r in m.encode_stream(enumerate(paths), ordered=True)}
    it = m.encode_stream(enumerate(paths), ordered=True, workers=1, lanes=lanes)
    res = [next(it)]
    time.sleep(1.0)
    killed = _decoders()
    assert killed
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    res += list(it)
    assert [r.key for r in res] == list(range(len(paths)))
    for r in res:
        if r.error and "decoder process died" in r.error:
            continue
        assert r.error == ref[r.key].error
        if r.error is None:
            np.testing.assert_allclose(r.clip, ref[r.key].clip, atol=1e-6)
    assert not set(_decoders()) & set(killed)


def test_embed_folder_same_output_inline_and_pooled(mixed, tmp_path, tiny_model):
    a = embed_folder(mixed, tmp_path / "a", str(tiny_model), progress=False, workers=0)
    b = embed_folder(mixed, tmp_path / "b", str(tiny_model), progress=False, workers=2)
    assert (a.embedded, a.failed) == (b.embedded, b.failed) == (len(list(mixed.iterdir())) - 2, 2)
    (ea, ra), (eb, rb) = read_embeddings(tmp_path / "a"), read_embeddings(tmp_path / "b")
    assert ra == rb
    np.testing.assert_allclose(ea, eb, atol=1e-6)


def test_scan_order_is_the_manifest_order(tmp_path):
    names = ["a.wav", "a/b.wav", "a-b.wav", "ab/c.wav", "a/z/y.flac", "B.wav", "é.ogg", "a0.mp3", "x.txt"]
    for n in names:
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / n, np.zeros(10, np.float32), 8000, format="WAV") if n != "x.txt" else \
            (tmp_path / n).write_text("no")
    with scan_folder(tmp_path) as scan:
        rels = [e.rel for e in scan]
        assert rels == sorted(n for n in names if n != "x.txt") and len(scan) == len(rels)
        assert [e.rel for e in scan] == rels  # read again, same listing
        e = next(iter(scan))
        assert e.path == tmp_path / e.rel and e.size == (tmp_path / e.rel).stat().st_size
    with pytest.raises(FileNotFoundError):
        scan_folder(tmp_path / "missing")


def test_ray_without_the_extra_is_one_line(mixed, tmp_path, tiny_model, monkeypatch):
    import sys

    from audioemb.cli import app
    from typer.testing import CliRunner

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the [ray] extra were not installed
    r = CliRunner().invoke(app, ["embed", str(mixed), "-o", str(tmp_path / "o"), "--model", str(tiny_model), "--ray"])
    assert r.exit_code == 2 and r.output.strip() == ("error: embed --ray needs ray, which is not installed: "
                                                     "pip install 'audioemb[ray]'"), r.output
    assert not (tmp_path / "o").exists()


def test_each_file_is_opened_once(clip_paths, tiny_model, monkeypatch):
    """Regression: the decode path opened each file twice, for its header (``info``) and to decode it."""
    import audioemb.audio as audio_io

    calls: list[str] = []
    real = audio_io.sf.SoundFile  # sf.info opens one too

    class Counted(real):
        def __init__(self, p, *a, **k):
            calls.append(p)
            super().__init__(p, *a, **k)

    monkeypatch.setattr(audio_io.sf, "SoundFile", Counted)
    m = load(tiny_model)
    got = list(m.encode_stream(enumerate(clip_paths), ordered=True))
    assert all(r.error is None for r in got)
    assert len(calls) == len(clip_paths)


def test_spool_reads_back_in_order_and_leaves_no_file(tmp_path, monkeypatch):
    """Regression: a killed job left its ``audioemb-*.jsonl`` listing in the temporary folder."""
    import tempfile

    from audioemb.scan import Spool

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    s = Spool([["a", 1, 2]])
    assert list(tmp_path.iterdir()) == []  # unlinked at once: nothing for a SIGKILL to leave behind
    for _x in s:  # appending while reading: the reader sees what was there when it began
        s.append(["b" * (1 << 20), 1, 0])  # lines longer than a read are joined back
    assert len(s) == 2
    inner = []
    for _x in s:
        inner.append([y[1] for y in s])  # nested readers share no position
    assert inner == [[1, 1], [1, 1]]
    assert [x[0][:1] for x in s] == ["a", "b"]
    s.close()


@pytest.mark.parametrize(("cores", "want"), [(1, (0, 1)), (2, (0, 2)), (3, (1, 1)), (8, (1, 6)), (16, (3, 12))])
def test_balanced_decodes_inline_on_one_or_two_cores(cores, want, monkeypatch):
    """On 2 cores a decoder process beside onnxruntime measured slower than decoding inline; on 16, 3 decoders,
    12 onnxruntime threads and the main thread were the fastest layout (docs/benchmarks.md, docs/gpu.md)."""
    from audioemb.embed import balanced

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)))
    assert balanced(None) == want
    assert balanced(3) == (3, max(1, cores - 3)) and balanced(0) == (0, cores)
    assert balanced(None, lanes=True) == ((cores if cores > 1 else 0), cores)  # a lane per core


def test_with_decoder_processes_the_model_runs_in_its_own_thread(mixed, tiny_model, monkeypatch):
    """With decoder processes the model runs in a thread of its own, so the main thread receives and batches
    the next windows meanwhile (16 cores: docs/benchmarks.md); inline, it stays in the caller's thread."""
    import threading

    m = load(tiny_model)
    run, names = m.backend.run, []

    def spy(wav, layers=False):
        names.append(threading.current_thread().name)
        return run(wav, layers=layers)

    monkeypatch.setattr(m.backend, "run", spy)
    paths = sorted(mixed.iterdir())
    inline = [r.clip for r in m.encode_stream(enumerate(paths), ordered=True, batch_size=2)]
    n_inline = len(names)
    pooled = [r.clip for r in m.encode_stream(enumerate(paths), ordered=True, batch_size=2, workers=1)]
    assert n_inline > 2 and set(names[:n_inline]) == {threading.current_thread().name}
    assert len(names) == 2 * n_inline and all(n.startswith("audioemb-model") for n in names[n_inline:])
    assert not [t for t in threading.enumerate() if t.name.startswith("audioemb-model")]  # stopped at the end
    for a, b in zip(inline, pooled):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_an_error_of_the_model_thread_reaches_the_caller(mixed, tiny_model, monkeypatch):
    m = load(tiny_model)

    def fail(wav, layers=False):
        raise RuntimeError("the backend failed")

    monkeypatch.setattr(m.backend, "run", fail)
    with pytest.raises(RuntimeError, match="the backend failed"):
        list(m.encode_stream(enumerate(sorted(mixed.iterdir())), workers=1))


def test_lanes_give_the_inline_results(clip_paths, tiny_model, monkeypatch):
    """Lanes: each decoder process runs the model too, on one onnxruntime thread, and sends embeddings,
    frames and layers instead of audio; the results are those of the model run in the main process."""
    m = load(tiny_model)
    paths = list(clip_paths) * 8
    inline = list(m.encode_stream(enumerate(paths), ordered=True, frames=True, layer="mean"))
    _slow_main_decoding(monkeypatch)
    run, in_main = m.backend.run, []

    def spy(wav, layers=False):
        in_main.append(len(wav))
        return run(wav, layers=layers)

    monkeypatch.setattr(m.backend, "run", spy)
    lanes = list(m.encode_stream(enumerate(paths), ordered=True, frames=True, layer="mean", workers=2, lanes=True))
    assert [r.key for r in lanes] == list(range(len(paths)))
    for a, b in zip(inline, lanes):
        assert a.error is None and b.error is None and a.duration_s == b.duration_s
        np.testing.assert_allclose(a.clip, b.clip, atol=1e-5)
        np.testing.assert_allclose(a.frames.embeddings, b.frames.embeddings, atol=1e-5)
        np.testing.assert_allclose(a.frames.timestamps, b.frames.timestamps)
    n_windows = sum(len(r.frames.embeddings) > 0 for r in inline)  # at least one window per file
    assert sum(in_main) < n_windows // 2, "the lanes did not run the model: the main process did"


def _slow_main_decoding(monkeypatch) -> None:
    """The main process decodes a source only every 50 ms, so that the lanes (which take a moment to start)
    get most of a short job."""
    import audioemb._decode_pool as pool

    real = pool.decode

    def slow_inline(seq, source, spec, inline_=True):
        time.sleep(0.05)
        yield from real(seq, source, spec)

    monkeypatch.setattr(pool, "decode", slow_inline)


def test_lanes_keep_segments(clip_paths, tiny_model, monkeypatch):
    m = load(tiny_model)
    paths = sorted(clip_paths) * 6
    inline = list(m.encode_stream(enumerate(paths), ordered=True, segments=0.5))
    _slow_main_decoding(monkeypatch)
    run, in_main = m.backend.run, []
    monkeypatch.setattr(m.backend, "run", lambda wav, layers=False: in_main.append(1) or run(wav, layers=layers))
    lanes = list(m.encode_stream(enumerate(paths), ordered=True, segments=0.5, workers=2, lanes=True))
    for a, b in zip(inline, lanes):
        assert a.spans == b.spans and a.vectors.shape == b.vectors.shape
        np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)
    assert len(in_main) < len(paths) // 2, "the lanes did not run the model: the main process did"


def test_a_lane_whose_model_does_not_load_sends_audio(tmp_path):
    from audioemb._decode import DecodeSpec
    from audioemb._decode_pool import _lane_backend

    assert _lane_backend(DecodeSpec(16000, 16000, 400)) is None
    assert _lane_backend(DecodeSpec(16000, 16000, 400, model=str(tmp_path / "not-a-model"))) is None


def test_with_lanes_results_stream_while_sources_remain(clip_paths, tiny_model, monkeypatch):
    """Regression: the windows the main process decoded while the lanes started waited in its batcher until
    the very end (nothing else filled their batch), and ``ordered`` held every later result behind them:
    an interrupted ``audioemb embed`` had saved nothing. Results now come while sources remain."""
    m = load(tiny_model)
    paths = list(clip_paths) * 40
    _slow_main_decoding(monkeypatch)
    taken = []

    def items():
        for i, p in enumerate(paths):
            taken.append(i)
            yield i, p

    it = m.encode_stream(items(), ordered=True, workers=1, lanes=True)
    first = next(it)
    assert first.key == 0 and first.error is None
    assert len(taken) < len(paths), "the first result came only after every source was read"
    assert [r.key for r in it] == list(range(1, len(paths)))
