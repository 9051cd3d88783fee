"""``load`` and ``encode``: shapes, determinism, batching, windows, frames, layers, inputs, backends."""

from __future__ import annotations

import numpy as np
import pytest

from audioemb.runtime import FrameEmbeddings, load, windows


def test_encode_shapes_and_normalisation(tiny_model, clip_paths):
    m = load(tiny_model)
    one = m.encode(clip_paths[0])
    assert one.shape == (m.embedding_dim,) and one.dtype == np.float32
    many = m.encode(clip_paths)
    assert many.shape == (len(clip_paths), m.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(many, axis=1), 1, atol=1e-5)
    raw = m.encode(clip_paths, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), many, atol=1e-5)
    assert m.encode([]).shape == (0, m.embedding_dim)


def test_deterministic_and_independent_of_batch(tiny_model, clip_paths):
    m = load(tiny_model)
    a = m.encode(clip_paths, batch_size=32)
    b = m.encode(clip_paths, batch_size=1)
    c = np.stack([m.encode(p) for p in reversed(clip_paths)])[::-1]
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a, c, atol=1e-6)
    np.testing.assert_array_equal(a, m.encode(clip_paths, batch_size=32))


def test_arrays_any_rate_and_layout(tiny_model, clip_paths):
    import soundfile as sf

    m = load(tiny_model)
    stereo = next(p for p in clip_paths if p.name == "speech_hello_hedgewars.wav")
    x, sr = sf.read(str(stereo), dtype="float32")  # stereo 44.1 kHz
    assert x.ndim == 2 and sr != m.sample_rate
    from_path = m.encode(stereo)
    np.testing.assert_allclose(m.encode(x, sample_rate=sr), from_path, atol=1e-4)
    np.testing.assert_allclose(m.encode(x.T, sample_rate=sr), from_path, atol=1e-4)  # (channels, samples)
    ints = (x * 32767).astype(np.int16)
    assert np.dot(m.encode(ints, sample_rate=sr), from_path) > 0.999
    with pytest.raises(ValueError):
        m.encode(np.zeros((500, 500), np.float32))
    np.testing.assert_allclose(m.encode(x, sample_rate=float(sr)), from_path, atol=1e-4)
    for bad in (0, -5, float("nan"), "44100"):  # regression: 0 was taken as "not given" (the model's rate)
        with pytest.raises(ValueError, match="sample_rate must be a positive"):
            m.encode(x, sample_rate=bad)
    import io

    # regression: encoded bytes or a file object gave "audio arrays must be 1-D or 2-D, got shape ()"
    for bad in (stereo.read_bytes(), io.BytesIO(stereo.read_bytes())):
        with pytest.raises(ValueError, match=r"cannot embed \w+: give a file path, a waveform array"):
            m.encode(bad)
    with pytest.raises(ValueError, match="must hold real numbers"):
        m.encode(np.array(["a", "b"]))


def test_long_audio_is_windowed_and_weighted(tiny_model):
    m = load(tiny_model)
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(m.window) * 0.1).astype(np.float32)
    b = (rng.standard_normal(m.window // 2) * 0.3).astype(np.float32)
    ea, eb = m.encode(a, normalize=False), m.encode(b, normalize=False)
    both = m.encode(np.concatenate([a, b]), normalize=False)
    np.testing.assert_allclose(both, (2 * ea + eb) / 3, atol=1e-5)


def test_short_audio_padded(tiny_model):
    m = load(tiny_model)
    tiny = np.full(100, 0.1, np.float32)  # 6 ms
    e = m.encode(tiny)
    assert np.isfinite(e).all()
    padded = np.concatenate([tiny, np.zeros(m.min_len - 100, np.float32)])
    np.testing.assert_allclose(e, m.encode(padded), atol=1e-6)


def test_frames_with_timestamps(tiny_model, clip_paths):
    m = load(tiny_model)
    fr = m.encode(clip_paths[0], output="frames")
    assert isinstance(fr, FrameEmbeddings) and fr.embeddings.shape == (len(fr), m.frame_dim)
    step = np.diff(fr.timestamps)
    np.testing.assert_allclose(step, 1 / m.frame_rate, atol=1e-6)
    assert 0 < fr.timestamps[0] < 1 / m.frame_rate
    rng = np.random.default_rng(1)
    long = (rng.standard_normal(int(2.5 * m.window)) * 0.1).astype(np.float32)
    lf = m.encode(long, output="frames")
    np.testing.assert_allclose(np.diff(lf.timestamps), 1 / m.frame_rate, atol=1e-4)  # seamless across windows
    assert lf.timestamps[-1] < len(long) / m.sample_rate
    frames = m.encode(clip_paths, output="frames")
    assert isinstance(frames, list) and len(frames) == len(clip_paths)


def test_layer_selection(tiny_frame_model, clip_paths):
    m = load(tiny_frame_model)
    last = m.encode(clip_paths[:3])
    np.testing.assert_allclose(m.encode(clip_paths[:3], layer=-1), last, atol=1e-5)
    first = m.encode(clip_paths[:3], layer=0)
    mean = m.encode(clip_paths[:3], layer="mean")
    assert not np.allclose(first, last) and not np.allclose(mean, last)
    with pytest.raises(ValueError, match="layer"):
        m.encode(clip_paths[0], layer=m.n_layers)


def test_onnx_and_torch_backends_agree(tiny_model, clip_paths):
    pytest.importorskip("torch")
    a = load(tiny_model, backend="onnx").encode(clip_paths)
    b = load(tiny_model, backend="torch").encode(clip_paths)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_windows_cover_the_stream():
    blocks = [np.ones(7, np.float32)] * 10  # 70 samples in odd blocks
    ws = list(windows(blocks, window=20, min_len=30))
    assert [(w.start, w.valid, len(w.audio)) for w in ws] == [(0, 20, 20), (20, 20, 20), (40, 20, 20), (60, 10, 30)]
