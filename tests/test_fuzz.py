"""Fuzzing the decode and embed path with hypothesis, on mutated real files of every supported format.

Marked slow: ``python -m pytest -m slow tests/test_fuzz.py``. The property: whatever the bytes, decoding either
yields finite mono float32 blocks or raises :class:`AudioError` naming the file; ``encode(errors="skip")``
gives a finite row or a NaN row with its error; never another exception, a hang or a crash. Results and
counts are recorded in docs/reliability.md (``FUZZ_EXAMPLES`` sets the examples per format).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audioemb.audio import AudioError, stream

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
# (extension, soundfile format, subtype): every container the package decodes that libsndfile can also write
FORMATS = [("wav", "WAV", "PCM_16"), ("wav", "WAV", "FLOAT"), ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"),
           ("opus", "OGG", "OPUS"), ("mp3", "MP3", "MPEG_LAYER_III"), ("aiff", "AIFF", "PCM_24"),
           ("au", "AU", "PCM_16"), ("caf", "CAF", "ALAC_16"), ("w64", "W64", "PCM_32"), ("rf64", "RF64", "PCM_U8")]
SEEN: dict[str, dict[str, int]] = {}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory, clip_paths):
    """One real clip (speech, 0.5 s, stereo at 44.1 kHz) re-encoded in each format."""
    d = tmp_path_factory.mktemp("seeds")
    x, sr = sf.read(next(p for p in clip_paths if p.name.startswith("speech_hello")), dtype="float32")
    out = {}
    for ext, fmt, sub in FORMATS:
        rate = 48000 if sub == "OPUS" else sr
        p = d / f"seed_{sub.lower()}.{ext}"
        sf.write(p, x if rate == sr else np.repeat(x, 2, axis=0)[: len(x) * 48000 // sr], rate, format=fmt,
                 subtype=sub)
        out[(ext, sub)] = p.read_bytes()
    return out


mutation = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 10**7), st.integers(1, 255)), min_size=1,
                                        max_size=16)),
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("splice"), st.tuples(st.integers(0, 10**7), st.binary(min_size=1, max_size=64))),
    st.tuples(st.just("header"), st.binary(min_size=1, max_size=80)),
    st.tuples(st.just("zero_run"), st.tuples(st.integers(0, 10**7), st.integers(1, 4096))),
)


def _mutate(data: bytes, m) -> bytes:
    kind, arg = m
    b = bytearray(data)
    if kind == "flip":
        for pos, x in arg:
            b[pos % len(b)] ^= x
    elif kind == "truncate":
        b = b[: int(len(b) * arg)]
    elif kind == "splice":
        pos, ins = arg
        b[pos % len(b):pos % len(b)] = ins
    elif kind == "header":
        b[: len(arg)] = arg
    else:
        pos, n = arg
        b[pos % len(b):pos % len(b) + n] = bytes(min(n, len(b)))
    return bytes(b)


def _check(path, model=None) -> str:
    report: dict = {}
    try:
        for block in stream(path, 16000, block_frames=4096, report=report):
            assert block.dtype == np.float32 and block.ndim == 1 and np.isfinite(block).all()
        outcome = "decoded" + "".join(", warned: " + ("truncated" if w.startswith("truncated") else "NaN/Inf zeroed")
                                      for w in report["warnings"][:1])
    except AudioError as e:
        assert str(path) in str(e) and e.reason
        return "refused: " + e.reason.split(" (")[0].split(":")[0][:40]
    if model is not None:
        emb, errors = model.encode([path], errors="skip")
        assert np.isfinite(emb).all() or (np.isnan(emb).all() and len(errors) == 1)
        outcome = outcome.replace("decoded", "embedded") if not errors else "refused at embedding"
    return outcome


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"{f[0]}-{f[2].lower()}")
def test_mutated_files_decode_or_fail_cleanly(fmt, seeds, tmp_path_factory, tiny_model):
    from audioemb.runtime import load

    model = load(tiny_model)
    d = tmp_path_factory.mktemp("fuzz")
    data = seeds[(fmt[0], fmt[2])]
    stats = SEEN.setdefault(f"{fmt[0]}/{fmt[2].lower()}", {})
    count = {"n": 0}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(m=mutation)
    def run(m):
        count["n"] += 1
        p = d / f"case.{fmt[0]}"
        p.write_bytes(_mutate(data, m))
        outcome = _check(p, model if count["n"] % 5 == 0 else None)
        stats[outcome] = stats.get(outcome, 0) + 1

    run()
    print(f"\nfuzz {fmt[0]}/{fmt[2].lower()}: {count['n']} cases: {stats}")
