"""Decoder processes when the main process dies without stopping them (SIGKILL, the OOM killer)."""

from __future__ import annotations

import subprocess

import numpy as np


def test_a_decoder_exits_when_the_main_process_is_gone_mid_job():
    """Regression: a decoder whose main process was killed while it had decoded audio to send lost its sender
    thread to the broken pipe, then blocked for ever on its full outbox; each `audioemb embed` killed with
    SIGKILL left such orphans behind (found after the test suite, one per killed job)."""
    from audioemb._decode import DecodeSpec
    from audioemb._decode_pool import _Worker

    w = _Worker(DecodeSpec(sample_rate=16000, window=160000, min_len=4000))
    wave = np.random.default_rng(0).standard_normal(16000 * 60).astype(np.float32) * 0.1
    for seq in range(12):  # far more decoded audio than the result pipe and the outbox hold
        w.tasks.send((seq, wave))
    assert w.conn.poll(30)  # it is running; nothing it sends is read from here on
    w.conn.close()  # the main process goes away: both pipes close, no None is ever sent
    w.tasks.close()
    try:
        assert w.proc.wait(timeout=30) is not None
    except subprocess.TimeoutExpired:
        w.proc.kill()
        raise AssertionError("the decoder process outlived its main process") from None
