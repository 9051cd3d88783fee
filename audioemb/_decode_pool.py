"""Decoder processes for :func:`audioemb.stream.encode_stream`: decoding runs beside the model, not before it.

Each worker is a fresh Python process (``python -m audioemb._decode_pool``; never a fork of a process that
runs onnxruntime threads, and never a re-run of the caller's main module) with two pipes: sources in,
:func:`audioemb._decode.decode`'s messages out, a few messages ahead at most, so a slow model holds back
the decoders and memory stays bounded. Until a worker is ready the main process decodes inline, so a
short job never waits for the workers to start. A worker that dies (a crash in a codec, the OOM killer)
is replaced: the source it was decoding gets an error naming the cause, the ones queued behind it go to
its replacement. Workers exit when the main process goes away (their source pipe closes, or their result
pipe breaks while they still have audio to send). As lanes (``DecodeSpec.model``) the workers also run the
model, each on one onnxruntime thread, and send embeddings; a source's windows are run before its ``end``
is sent, so a dying worker still fails only the source it was on.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

from ._decode import DecodeSpec, decode

AHEAD = 2  # sources queued per worker besides the one it decodes


def _serve(task_fd: int, result_fd: int) -> None:
    """A worker's main loop: read the spec, then (seq, source) pairs until None or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the main process, which stops us
    tasks, results = Connection(task_fd, writable=False), Connection(result_fd, readable=False)
    inbox: queue.Queue = queue.Queue()  # the source pipe is always drained: the parent never blocks on it
    outbox: queue.Queue = queue.Queue(maxsize=8)  # decoding goes on while a message is being sent

    def read() -> None:
        while True:
            try:
                task = tasks.recv()
            except (EOFError, OSError):
                task = None
            inbox.put(task)
            if task is None:
                return

    def send() -> None:
        while (msg := outbox.get()) is not None:
            try:
                results.send(msg)
            except OSError:  # the main process is gone (killed): nobody reads what is left, so stop now
                os._exit(0)  # rather than block for ever on the outbox that this thread no longer empties

    spec = tasks.recv()
    backend = _lane_backend(spec)
    threading.Thread(target=read, daemon=True).start()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    outbox.put(("ready", -1))
    while (task := inbox.get()) is not None:
        seq, source = task
        for msg in decode(seq, source, spec, inline=False):
            outbox.put(run_windows(backend, msg, spec.layers) if backend is not None and msg[0] == "wins" else msg)
    outbox.put(None)
    sender.join()


def run_windows(backend, msg: tuple, layers: bool) -> tuple:
    """A ``wins`` message run through ``backend`` in a decoder process (a lane): ``("embs", seq, [(sub, index,
    start, valid, embedding, frames, layers | None)])``, windows of equal length batched together."""
    _kind, seq, wins = msg
    by_len: dict[int, list[tuple]] = defaultdict(list)
    for w in wins:
        by_len[len(w[4])].append(w)
    out = []
    for group in by_len.values():
        emb, fr, lay = backend.run(np.stack([w[4] for w in group]), layers=layers)
        out += [(sub, index, start, valid, emb[i], fr[i], None if lay is None else lay[:, i])
                for i, (sub, index, start, valid, _audio) in enumerate(group)]
    return "embs", seq, out


def _lane_backend(spec: DecodeSpec):
    """The model of a lane (``spec.model``) on one onnxruntime thread, or None: without a model, or if it does
    not load here (the worker then sends audio, and the main process runs it)."""
    if not spec.model:
        return None
    try:
        from .backends import OnnxBackend
        from .modelfolder import open_folder

        return OnnxBackend(open_folder(spec.model, verify=()), threads=1, providers=["CPUExecutionProvider"])
    except Exception:  # the main process can still run the windows
        return None


class _Worker:
    def __init__(self, spec: DecodeSpec):
        t_read, t_write = os.pipe()
        r_read, r_write = os.pipe()
        pkg = str(Path(__file__).resolve().parents[1])
        code = (f"import sys; sys.path.insert(0, {pkg!r}); from audioemb._decode_pool import _serve; "
                f"_serve({t_read}, {r_write})")
        self.proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(t_read, r_write),
                                     stdin=subprocess.DEVNULL)
        os.close(t_read)
        os.close(r_write)
        self.tasks, self.conn = Connection(t_write, readable=False), Connection(r_read, writable=False)
        self.tasks.send(spec)
        self.ready = False
        self.out: deque[int] = deque()  # sources sent to it and not finished, oldest (being decoded) first

    def stop(self, wait: bool) -> None:
        if wait:
            with contextlib.suppress(OSError):
                self.tasks.send(None)
        self.tasks.close()
        try:
            self.proc.wait(timeout=5.0 if wait else 0.01)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.conn.close()


class DecodePool:
    """``workers`` decoder processes; :meth:`run` turns ``(seq, source)`` pairs into decode messages."""

    def __init__(self, workers: int, spec: DecodeSpec):
        self.spec = spec
        self.workers = [_Worker(spec) for _ in range(workers)]
        self.owner: dict[int, _Worker] = {}
        self.sources: dict[int, Any] = {}

    def _send(self, w: _Worker, seq: int, source: Any) -> None:
        w.out.append(seq)
        self.owner[seq] = w
        self.sources[seq] = source
        with contextlib.suppress(OSError):  # it died: its closed pipe is seen next, and this source goes
            w.tasks.send((seq, source))  # to its replacement

    def run(self, sources: Iterable[tuple[int, Any]]) -> Iterator[tuple]:
        """Decode messages of every source, in the order they arrive (a source's own messages in order)."""
        src, exhausted, finished = iter(sources), False, False
        try:
            while True:
                while not exhausted:
                    if not any(w.ready for w in self.workers):  # has one started since? (never blocks)
                        for c in wait([w.conn for w in self.workers], timeout=0):
                            yield from self._receive(self._by_conn(c))
                    ready = [w for w in self.workers if w.ready]
                    w = min(ready, key=lambda w: len(w.out)) if ready else None
                    if w is not None and len(w.out) > AHEAD:
                        break
                    try:
                        seq, source = next(src)
                    except StopIteration:
                        exhausted = True
                        break
                    if w is None:  # no worker has started yet: decode this one here
                        yield from decode(seq, source, self.spec)
                    else:
                        self._send(w, seq, source)
                if exhausted and not self.owner:
                    finished = True
                    return
                for c in wait([w.conn for w in self.workers], timeout=1.0):
                    yield from self._receive(self._by_conn(c))
        finally:
            for w in self.workers:  # one still starting up was never needed: stop it without waiting
                w.stop(wait=finished and w.ready)

    def _by_conn(self, conn: Connection) -> _Worker:
        return next(w for w in self.workers if w.conn is conn)

    def _receive(self, w: _Worker) -> Iterator[tuple]:
        try:
            msg = w.conn.recv()
        except (EOFError, OSError):  # it died (its pipe closed): replace it
            yield from self._replace(w)
            return
        if msg[0] == "ready":
            w.ready = True
            return
        if msg[0] in ("end", "err"):
            self.owner.pop(msg[1], None)
            self.sources.pop(msg[1], None)
            w.out.remove(msg[1])
        yield msg

    def _replace(self, w: _Worker) -> Iterator[tuple]:
        w.stop(wait=False)
        fresh = _Worker(self.spec)
        self.workers[self.workers.index(w)] = fresh
        if w.out:
            seq = w.out.popleft()
            self.owner.pop(seq, None)
            self.sources.pop(seq, None)
            yield ("err", seq, f"the decoder process died while decoding it (exit code {w.proc.returncode})", None)
        for seq in w.out:  # queued behind it: its replacement decodes them once it is ready
            self._send(fresh, seq, self.sources[seq])
