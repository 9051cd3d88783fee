"""The one streaming encode path: sources -> decoded windows -> equal-length batches -> pooled embeddings.

``EmbeddingModel.encode``, :func:`audioemb.embed.embed_folder` and :class:`audioemb.index.Index` all run
:func:`encode_stream`. Each source (a path or an array) is decoded as a stream and cut into fixed windows
(:func:`audioemb._decode.windows`); windows of exactly the same length are batched through the backend (so
an embedding never depends on what else was in the batch) and pooled per source. With ``workers > 0`` the
decoding runs in that many processes (:mod:`audioemb._decode_pool`) while the model runs in this one, so
the two overlap; with ``lanes`` those processes run the model too. Otherwise it runs inline. Every source
gives one :class:`Encoded`, with its embedding or its error.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import audio as audio_io
from ._decode import DecodeSpec, Window, decode
from ._vectors import l2_normalize

if TYPE_CHECKING:
    from .runtime import EmbeddingModel, FrameEmbeddings, Layer

MODEL_AHEAD = 2  # with decoder processes: batches the model thread may run ahead of the main thread
_NO_AUDIO = np.zeros(0, dtype=np.float32)  # the audio of a window a lane has already run


@dataclass
class Encoded:
    """The result for one source: its ``clip`` embedding (D,) and ``frames``, or its ``error``.

    With segments, ``vectors`` (n, D) and ``spans`` [(start_s, end_s)] hold one embedding per segment
    (without, ``spans`` is the one span of the whole source).
    ``header`` is what a file's header says; ``duration_s`` what was decoded; ``warning`` what was wrong
    but still embedded (zeroed NaN samples, a truncated file).
    """

    key: Any
    clip: np.ndarray | None = None
    frames: FrameEmbeddings | None = None
    error: str | None = None
    warning: str | None = None
    duration_s: float | None = None
    header: audio_io.AudioInfo | None = None
    vectors: np.ndarray | None = None
    spans: list = field(default_factory=list)
    exception: BaseException | None = None  # the original error, when decoded in this process

    def __iter__(self):
        """``key, clip, frames | error``, as in ``for key, clip, x in model.encode_stream(...)``."""
        return iter((self.key, self.clip, self.error if self.error else self.frames))


class _Batcher:
    """Runs windows through a backend in batches of identical length; hands results to ``on_result``.

    At most ``max_pending`` windows wait; beyond that the fullest length group runs, even if small. With
    ``ahead > 0`` the backend runs in a thread of its own, up to ``ahead`` batches ahead of this one, so that
    receiving, windowing and stacking the next batch overlap the model (onnxruntime and torch release the
    GIL); results are still handed over in this thread, in the order the batches were made.
    """

    def __init__(self, run: Callable, batch_size: int, on_result: Callable, max_pending: int | None = None,
                 ahead: int = 0):
        self.run, self.batch_size, self.on_result = run, batch_size, on_result
        self.max_pending = max_pending or 4 * batch_size
        self.groups: dict[int, list[Window]] = defaultdict(list)
        self.n_pending = 0
        self.ahead = ahead
        self.inflight: deque[tuple[list[Window], Future]] = deque()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="audioemb-model") if ahead > 0 else None

    def add(self, w: Window) -> None:
        g = self.groups[len(w.audio)]
        g.append(w)
        self.n_pending += 1
        if len(g) >= self.batch_size:
            self._run(len(w.audio))
        while self.n_pending > self.max_pending:
            self._run(max(self.groups, key=lambda k: len(self.groups[k])))

    def flush(self) -> None:
        for length in sorted(self.groups):
            self._run(length)
        while self.inflight:
            self._collect()

    def close(self) -> None:
        """Stop the model thread (after the batch it is running)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, length: int) -> None:
        group = self.groups.pop(length, [])
        self.n_pending -= len(group)
        for s in range(0, len(group), self.batch_size):
            chunk = group[s:s + self.batch_size]
            wav = np.stack([w.audio for w in chunk])
            if self._pool is None:
                self._deliver(chunk, self.run(wav))
                continue
            while len(self.inflight) >= self.ahead:
                self._collect()
            self.inflight.append((chunk, self._pool.submit(self.run, wav)))

    def _collect(self) -> None:
        chunk, future = self.inflight.popleft()
        self._deliver(chunk, future.result())

    def _deliver(self, chunk: list[Window], out: tuple) -> None:
        emb, frames, layers = out
        for i, w in enumerate(chunk):
            self.on_result(w, emb[i], frames[i], None if layers is None else layers[:, i])


@dataclass
class _Acc:
    """Accumulated window results of one source (or one segment)."""

    weighted: np.ndarray | None = None
    weight: float = 0.0
    frames: list = field(default_factory=list)
    times: list = field(default_factory=list)


class _Pending:
    """A source whose windows are being decoded or embedded."""

    def __init__(self, key):
        self.key, self.header, self.seen, self.valid, self.expected, self.end = key, None, 0, 0, None, None
        self.accs: dict[int, _Acc] = defaultdict(_Acc)


def lanes_possible(model: EmbeddingModel) -> bool:
    """Whether decoder processes can run ``model`` themselves (lanes): onnxruntime on the CPU only."""
    return getattr(model.backend, "providers", None) == ["CPUExecutionProvider"]


def encode_stream(model: EmbeddingModel, items: Iterable[tuple[Any, Any]], sample_rate: int | None = None,
                  batch_size: int = 32, normalize: bool = True, layer: Layer = None, frames: bool = False,
                  segments: float | None = None, workers: int = 0, ordered: bool = False,
                  lanes: bool = False) -> Iterator[Encoded]:
    """Embed ``(key, source)`` pairs (a source is a path or a waveform array), yielding one :class:`Encoded`
    per source as soon as its last window has run (in input order with ``ordered``).

    Args:
        sample_rate: the rate of array sources (None: the model's); files carry their own.
        layer, normalize, frames: as in :meth:`EmbeddingModel.encode`.
        segments: embed each ``segments``-second stretch of a source separately (``vectors``, ``spans``).
        workers: decoder processes (0: decode in this process).
        lanes: with ``workers``, each decoder process also runs the model, on one onnxruntime thread of its
            own, and sends embeddings instead of audio (onnxruntime on the CPU only; otherwise ignored).

    At most ``4 x batch_size`` windows wait for the model and a few sources per worker are decoded ahead,
    so memory does not grow with the number or the length of the sources.
    """
    from .runtime import nonfinite_reason

    model.check_layer(layer)
    if sample_rate is not None and not (isinstance(sample_rate, (int, float, np.number))
                                        and np.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive number of samples per second, got {sample_rate!r}")
    lanes = lanes and workers > 0 and lanes_possible(model)
    want_layers = layer is not None
    spec = DecodeSpec(model.sample_rate, model.window, model.min_len,
                      max(1, int(round(segments * model.sample_rate))) if segments else None, sample_rate,
                      model=str(model.folder.path) if lanes else None, layers=want_layers)
    pending: dict[int, _Pending] = {}
    ready: dict[int, Encoded] = {}
    order: deque[int] = deque()
    sr = model.sample_rate

    def on_result(w: Window, emb: np.ndarray, fr: np.ndarray, layers: np.ndarray | None) -> None:
        seq, sub = w.key
        st = pending.get(seq)
        if st is None:  # the source failed meanwhile
            return
        if want_layers:
            fr = model.select_layer(layers, layer)
            emb = pool_frames(fr)
        acc = st.accs[sub]
        weight = max(w.valid, 1)
        acc.weighted = emb * weight if acc.weighted is None else acc.weighted + emb * weight
        acc.weight += weight
        if frames:
            t = w.start + model.frame_offset + np.arange(len(fr)) * model.frame_hop_samples
            keep = t < w.start + max(w.valid, 1)
            keep[0] = True
            acc.frames.append((w.index, fr[keep]))
            acc.times.append((w.index, t[keep] / sr))
        st.seen += 1
        if st.seen == st.expected:
            finish(seq)

    def finish(seq: int) -> None:
        st = pending.pop(seq)
        samples, warnings, peak, spans = st.end
        res = Encoded(st.key, header=st.header)
        vecs = []
        for sub in sorted(st.accs):
            acc = st.accs[sub]
            clip = (acc.weighted / acc.weight).astype(np.float32)
            vecs.append(l2_normalize(clip) if normalize else clip)
        if frames:
            acc = st.accs[0]
            # windows may finish out of order (batches group equal lengths): restore time order
            f = np.concatenate([x for _, x in sorted(acc.frames, key=lambda t: t[0])]).astype(np.float32)
            ts = np.concatenate([x for _, x in sorted(acc.times, key=lambda t: t[0])]).astype(np.float32)
            from .runtime import FrameEmbeddings

            res.frames = FrameEmbeddings(l2_normalize(f) if normalize else f, ts)
        res.error = next((r for i, v in enumerate(vecs)
                          if (r := nonfinite_reason(v, res.frames if i == 0 else None, peak))), None)
        if res.error:
            res.frames = None
        else:
            res.warning = "; ".join(warnings) or None
            if spec.segments:
                res.vectors = np.stack(vecs)
                res.spans = [(s / sr, (s + length) / sr) for s, length in spans]
            else:
                res.clip = vecs[0]
                res.spans = [(0.0, st.valid / sr)]
        res.duration_s = round((samples if samples is not None else st.valid) / sr, 4)
        ready[seq] = res

    def handle(msg: tuple) -> None:
        kind, seq = msg[0], msg[1]
        st = pending.get(seq)
        if st is None:
            return
        if kind == "head":
            st.header = msg[2]
        elif kind == "wins":
            for sub, index, start, valid, audio in msg[2]:
                st.valid += valid
                batcher.add(Window((seq, sub), index, start, valid, audio))
        elif kind == "embs":  # a lane ran them
            for sub, index, start, valid, emb, fr, lay in msg[2]:
                st.valid += valid
                on_result(Window((seq, sub), index, start, valid, _NO_AUDIO), emb, fr, lay)
            if batcher.n_pending:  # the lanes have taken over: windows decoded here meanwhile would wait for
                batcher.flush()  # the end of the job, and (ordered) hold every later result behind them
        elif kind == "end":
            st.expected, st.end = msg[2], msg[3:]
            if st.seen == st.expected:
                finish(seq)
        else:  # "err"
            del pending[seq]
            ready[seq] = Encoded(st.key, error=msg[2], header=st.header, exception=msg[3])

    batcher = _Batcher(lambda wav: model.backend.run(wav, layers=want_layers), batch_size, on_result,
                       ahead=MODEL_AHEAD if workers > 0 and not lanes else 0)

    def sources() -> Iterator[tuple[int, Any]]:
        for seq, (key, source) in enumerate(items):
            pending[seq] = _Pending(key)
            order.append(seq)
            yield seq, source

    def drain() -> Iterator[Encoded]:
        while order and (order[0] in ready or not ordered):
            if ordered:
                yield ready.pop(order.popleft())
            else:
                done = [s for s in order if s in ready]
                for s in done:
                    order.remove(s)
                    yield ready.pop(s)
                return

    if workers > 0:
        from ._decode_pool import DecodePool

        messages: Iterator[tuple] = DecodePool(workers, spec).run(sources())
    else:
        messages = (m for seq, src in sources() for m in decode(seq, src, spec))
    try:
        for msg in messages:
            handle(msg)
            if ready:
                yield from drain()
        batcher.flush()
        yield from drain()
    finally:
        batcher.close()
        close = getattr(messages, "close", None)
        if close:
            close()


def pool_frames(frames: np.ndarray) -> np.ndarray:
    """The models' pooling: concat(mean over time, max over time) of (T, D) frames."""
    return np.concatenate([frames.mean(axis=0), frames.max(axis=0)])
