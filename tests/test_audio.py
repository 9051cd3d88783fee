"""Decoding: formats, bit depths, channels, rates, block-wise reading and every kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audioemb import audio
from audioemb.audio import AudioError, find_audio, info, load, resample, stream

SR = 22050


def tone(n: int = SR, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / sr
    x = 0.5 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1) if channels > 1 else x


@pytest.mark.parametrize(("fmt", "subtype", "ext", "tol"), [
    ("WAV", "PCM_U8", "wav", 1e-2), ("WAV", "PCM_16", "wav", 1e-4), ("WAV", "PCM_24", "wav", 1e-6),
    ("WAV", "PCM_32", "wav", 1e-6), ("WAV", "FLOAT", "wav", 1e-7), ("WAV", "DOUBLE", "wav", 1e-7),
    ("FLAC", "PCM_16", "flac", 1e-4), ("FLAC", "PCM_24", "flac", 1e-6), ("AIFF", "PCM_16", "aiff", 1e-4),
    ("OGG", "VORBIS", "ogg", None), ("MP3", "MPEG_LAYER_III", "mp3", None),
])
def test_formats_and_bit_depths(tmp_path, fmt, subtype, ext, tol):
    x = tone()
    p = tmp_path / f"t.{ext}"
    sf.write(p, x, SR, format=fmt, subtype=subtype)
    y = load(p)
    assert y.dtype == np.float32 and y.ndim == 1
    if tol is not None:
        assert len(y) == len(x)
        np.testing.assert_allclose(y, x, atol=tol)
    else:  # lossy codecs: same length within codec padding, and the same tone
        assert abs(len(y) - len(x)) < 3000
        spec = np.abs(np.fft.rfft(y[:SR // 2]))
        assert abs(np.argmax(spec) * SR / (SR // 2) - 440) < 10


@pytest.mark.parametrize("channels", [2, 3, 6])
def test_multichannel_mixed_to_mono(tmp_path, channels):
    x = tone(channels=channels)
    p = tmp_path / "m.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    np.testing.assert_allclose(load(p), x.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize("channels", [2, 3])
def test_mix_of_huge_and_non_finite_samples(tmp_path, channels):
    """The mix scales each channel before summing: huge finite samples stay finite (as a float64 mean kept
    them), a NaN or Inf in any channel zeroes that sample and is counted in the warning."""
    x = tone(channels=channels)
    x[:10] = 3e38  # every channel near float32's max: their sum would overflow
    x[20, 0] = np.nan
    x[30, -1] = np.inf
    x[40, 0], x[40, 1] = np.inf, -np.inf
    p = tmp_path / "edge.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    report: dict = {}
    y = np.concatenate(list(stream(p, report=report)))
    with np.errstate(invalid="ignore"):
        ref = x.astype(np.float64).mean(axis=1)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y[:10], 3e38, rtol=1e-6)
    assert y[20] == y[30] == y[40] == 0
    keep = np.isfinite(ref)
    np.testing.assert_allclose(y[keep], ref[keep], rtol=1e-6, atol=1e-7)
    assert report["warnings"] and report["warnings"][0].startswith("3 of ")


@pytest.mark.parametrize("rate", [8000, 11025, 44100, 48000, 96000, 7350])
def test_resampled_to_target(tmp_path, rate):
    x = tone(n=rate, sr=rate)
    p = tmp_path / "r.wav"
    sf.write(p, x, rate, subtype="FLOAT")
    y = load(p, 16000)
    assert abs(len(y) - 16000) <= 1
    spec = np.abs(np.fft.rfft(y[:16000]))
    assert abs(np.argmax(spec) - 440) <= 2  # 1 Hz bins over one second


def test_blockwise_stream_matches_whole_file(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((200_000, 2)) * 0.1).astype(np.float32)
    p = tmp_path / "long.wav"
    sf.write(p, x, 44100, subtype="FLOAT")
    small = np.concatenate(list(stream(p, 16000, block_frames=4096)))
    big = np.concatenate(list(stream(p, 16000, block_frames=1 << 20)))
    np.testing.assert_allclose(small, big, atol=1e-6)
    assert all(b.dtype == np.float32 for b in stream(p, 16000, block_frames=4096))
    assert max(len(b) for b in stream(p, 16000, block_frames=4096)) < 4096


def test_in_memory_resample_matches_file_path(tmp_path):
    x = tone(channels=2)
    p = tmp_path / "s.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    np.testing.assert_allclose(resample(x, SR, 16000), load(p, 16000), atol=1e-5)
    ints = (x * 32767).astype(np.int16)
    np.testing.assert_allclose(resample(ints, SR, SR), x.mean(axis=1), atol=1e-4)


def test_silence_is_valid_audio(tmp_path):
    p = tmp_path / "silence.wav"
    sf.write(p, np.zeros(8000, np.float32), 8000)
    assert np.all(load(p, 16000) == 0)


def test_sporadic_nan_zeroed_all_nan_refused(tmp_path):
    x = tone()
    x[100:110] = np.nan
    p = tmp_path / "some_nan.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    y = load(p)
    assert np.isfinite(y).all() and np.all(y[100:110] == 0)
    q = tmp_path / "all_nan.wav"
    sf.write(q, np.full(1000, np.nan, np.float32), SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load(q)


def _bad_files(tmp_path):
    good = tmp_path / "good.flac"
    sf.write(good, tone(), SR)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.mp3").write_text("this is not audio")
    (tmp_path / "trunc.flac").write_bytes(good.read_bytes()[:200])
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), SR)
    (tmp_path / "folder.wav").mkdir()
    return {"empty.wav": "empty", "text.mp3": "not a readable audio", "trunc.flac": "",
            "zero.wav": "no audio frames", "folder.wav": "folder"}


def test_bad_files_raise_with_path_and_reason(tmp_path):
    for name, reason in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as e:
            load(tmp_path / name)
        assert name in str(e.value) and reason in e.value.reason


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="cannot read"):
        info(tmp_path / "nope.wav")


def test_find_audio_recursive_sorted(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    for rel in ["z.wav", "b/a.FLAC", "b/c/ü ñ.ogg", "notes.txt", "b/c/x.mp3"]:
        (tmp_path / rel).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in find_audio(tmp_path)]
    assert found == ["b/a.FLAC", "b/c/x.mp3", "b/c/ü ñ.ogg", "z.wav"]


@pytest.mark.parametrize("fmt,subtype,ext", [("WAV", "PCM_16", "wav"), ("AIFF", "PCM_16", "aiff"),
                                             ("W64", "PCM_16", "w64")])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_int16_read_path_equals_libsndfile_float(tmp_path, monkeypatch, fmt, subtype, ext, channels):
    """Uncompressed 16-bit files are read as int16 and scaled here; the samples equal libsndfile's own floats."""
    rng = np.random.default_rng(channels)
    x = np.clip(rng.standard_normal((70_000, channels)) * 0.4, -1, 1)  # more than one block
    x[:3] = [[1.0] * channels, [-1.0] * channels, [0.0] * channels]  # full scale both ways
    p = tmp_path / f"t.{ext}"
    sf.write(p, x, 22050, subtype=subtype, format=fmt)
    assert subtype in audio.INT16_SUBTYPES and sf.info(p).subtype == subtype
    fast = [audio.load(p), audio.load(p, 16000)]
    monkeypatch.setattr(audio, "INT16_SUBTYPES", frozenset())
    slow = [audio.load(p), audio.load(p, 16000)]
    for a, b in zip(fast, slow):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
