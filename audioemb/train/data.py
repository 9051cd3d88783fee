"""Training data: the corpus's training clips packed in one int16 memmap, and random crops from it.

Every recording gives ``n_crops`` independent random crops: crops of the same recording are positives,
other recordings in the batch are negatives. Batches are a pure function of (seed, step), so a resumed
run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..corpus.domains import domain_of
from ..errors import AudioembError
from ..fsio import open_memmap_allocated

PACK_VERSION = 1


class DataError(AudioembError, ValueError):
    """The training data cannot be used (missing folder, no audio, a domain with no clips); the message says
    which and why."""


@dataclass
class Pack:
    """All training clips of a corpus: ``audio[offsets[i]:offsets[i] + lengths[i]]`` is clip ``i``."""

    audio: np.ndarray  # int16 memmap
    offsets: np.ndarray
    lengths: np.ndarray
    paths: list[str]
    sample_rate: int
    groups: list[str] | None = None  # a corpus clip's group (a voice, an instrument program); None: its folder
    domains: list[str] | None = None  # a corpus clip's domain (speech, music, sound); None: from its path

    def __len__(self) -> int:
        return len(self.offsets)

    def clip(self, i: int) -> np.ndarray:
        o, n = int(self.offsets[i]), int(self.lengths[i])
        return self.audio[o:o + n].astype(np.float32) / 32768.0


def corpus_data_tag(recipe: dict) -> str:
    """A corpus's data tag from its ``recipe.json``: ``debian2`` for v2; v1's recipe predates the tag (``debian``)."""
    return recipe.get("data_tag") or "debian"


def read_manifest(corpus: Path, split: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in open(corpus / "manifest.jsonl")]
    return [r for r in rows if split is None or r["split"] == split]


def load_pack(corpus: Path, split: str = "train", log=print, rows: list[dict] | None = None) -> Pack:
    """Open (building it on first use) ``corpus/cache/pack-<split>.npy`` and its index; ``rows``: the split's
    manifest rows when the caller has already read them."""
    cache = corpus / "cache"
    cache.mkdir(exist_ok=True)
    audio_p, index_p = cache / f"pack-{split}.npy", cache / f"pack-{split}.json"
    manifest_sha = json.loads((corpus / "recipe.json").read_text())["manifest_sha256"]
    if index_p.exists():
        idx = json.loads(index_p.read_text())
        if idx.get("manifest_sha256") != manifest_sha or idx.get("version") != PACK_VERSION:
            index_p.unlink()
    rows = read_manifest(corpus, split) if rows is None else rows
    if not index_p.exists():
        infos = [sf.info(str(corpus / r["path"])) for r in rows]
        lengths = np.array([i.frames for i in infos], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        log(f"packing {len(rows)} {split} clips ({lengths.sum() / infos[0].samplerate / 3600:.2f} h) ...")
        mm = open_memmap_allocated(audio_p, np.int16, (int(lengths.sum()),))
        for r, o, n in zip(rows, offsets, lengths):
            mm[o:o + n] = sf.read(str(corpus / r["path"]), dtype="int16")[0][:n]
        mm.flush()
        del mm
        index_p.write_text(json.dumps({"version": PACK_VERSION, "manifest_sha256": manifest_sha,
                                       "sample_rate": infos[0].samplerate, "paths": [r["path"] for r in rows],
                                       "offsets": offsets.tolist(), "lengths": lengths.tolist()}))
    idx = json.loads(index_p.read_text())
    same = [r["path"] for r in rows] == idx["paths"]
    groups = [r.get("group", "") for r in rows] if same else None
    domains = [domain_of(r) for r in rows] if same else None
    return Pack(np.load(audio_p, mmap_mode="r"), np.array(idx["offsets"]), np.array(idx["lengths"]),
                idx["paths"], idx["sample_rate"], groups, domains)


def clip_groups(pack: Pack) -> list[str]:
    """Each clip's group: the corpus's ``group`` (a voice, a phrase, an instrument program), else its folder."""
    return list(pack.groups) if pack.groups is not None else [os.path.dirname(p) for p in pack.paths]


def clip_domains(pack: Pack) -> list[str]:
    """Each clip's domain: the corpus's (speech, music, sound); for ``--data`` folders (paths
    ``<folder name>/...``), the sub-folder it sits in, ``<folder name>/<sub-folder>``, or the folder's name for a
    file at its top."""
    if pack.domains is not None:
        return list(pack.domains)
    return ["/".join(Path(p).parts[:2]) if len(Path(p).parts) > 2 else Path(p).parts[0] for p in pack.paths]


def domain_probs(domains: list[str], weights: dict[str, float]) -> np.ndarray:
    """Per-clip draw probabilities that give each domain named in ``weights`` its share of the crops
    (``{"speech": 2, "music": 1, "sound": 1}``: half speech, a quarter each of the others), uniform within a
    domain. Domains not named are not drawn; a named domain with no clips is an error."""
    names = np.array(domains)
    total = sum(weights.values())
    p = np.zeros(len(names))
    for dom, w in weights.items():
        members = names == dom
        if not members.any():
            raise DataError(f"domain_weights names {dom!r}, but no training clip is in it; the data's "
                             f"domains: {sorted(set(domains))}")
        p[members] = w / total / members.sum()
    return p / p.sum()


def partners(groups: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """For each position of ``groups``, the positions of its group, itself included (one array per group,
    shared), and its place in that array."""
    by: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by.setdefault(g, []).append(i)
    arrays = {g: np.array(v) for g, v in by.items()}
    place = {i: k for v in by.values() for k, i in enumerate(v)}
    return [arrays[g] for g in groups], np.array([place[i] for i in range(len(groups))])


def _to_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x


def random_crop(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``n``-sample window of ``x``; shorter clips are zero-padded at a random offset."""
    if len(x) >= n:
        s = int(rng.integers(0, len(x) - n + 1))
        return x[s:s + n]
    out = np.zeros(n, dtype=x.dtype)
    s = int(rng.integers(0, n - len(x) + 1))
    out[s:s + len(x)] = x
    return out


class CropLoader:
    """Iterator of (step, batch) with batch a float32 array (batch_size, n_crops, crop_samples).

    ``speed`` > 0 resamples each crop by a factor in [1 - speed, 1 + speed] (pitch and tempo change
    together, as in Kaldi's speed perturbation). A background thread prepares the next batches.
    Under DDP each of ``world`` ranks draws from its own shard of the clips (every ``world``-th clip,
    starting at ``rank``) with its own random stream, so ranks never see the same batch.

    ``pair=True`` draws the batch as pairs: clip ``2k + 1`` comes from the group of clip ``2k`` (another clip
    of the same voice, instrument program or folder; a random clip if it is alone in its group), so an
    objective that pairs neighbours in the batch (temporal order's foreign segment) gets hard negatives.

    ``weights`` (``{domain: weight}``, see :func:`domain_probs`) draws each domain's share of the clips instead
    of drawing clips uniformly, so a domain the data has little of (sound) can still fill its share of batches.
    """

    def __init__(self, pack: Pack, batch_size: int, crop_s: float, n_crops: int = 2, speed: float = 0.0,
                 seed: int = 0, start_step: int = 0, prefetch: int = 4, indices: np.ndarray | None = None,
                 rank: int = 0, world: int = 1, pair: bool = False, weights: dict[str, float] | None = None):
        self.pack, self.batch_size, self.n_crops, self.speed, self.seed = pack, batch_size, n_crops, speed, seed
        self.crop = int(round(crop_s * pack.sample_rate))
        self.indices = np.arange(len(pack)) if indices is None else indices
        if world > 1:
            self.indices = self.indices[rank::world]
        self._stream = [seed] if world == 1 else [seed, 1_000_003 + rank]
        self.pair = pair
        self._p = None
        if weights:
            doms = clip_domains(pack)
            self._p = domain_probs([doms[int(i)] for i in self.indices], weights)
        if pair:  # the groups of this rank's shard, as positions into self.indices
            groups = clip_groups(pack)
            self._members, self._pos = partners([groups[int(i)] for i in self.indices])
        self.step = start_step
        self._q: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def make_batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(clip indices, crops) of ``step``: a pure function of (seed, step)."""
        rng = np.random.default_rng([*self._stream, step])
        if self._p is None:
            pos = rng.integers(0, len(self.indices), self.batch_size)
        else:
            pos = rng.choice(len(self.indices), self.batch_size, p=self._p)
        if self.pair:
            pos = self._paired(pos, rng)
        clips = self.indices[pos]
        out = np.empty((self.batch_size, self.n_crops, self.crop), dtype=np.float32)
        for b, ci in enumerate(clips):
            o, n = int(self.pack.offsets[ci]), int(self.pack.lengths[ci])
            x = self.pack.audio[o:o + n]  # int16: crop first, convert only the crop (same values as clip())
            for k in range(self.n_crops):
                if self.speed:
                    factor = 1 + float(rng.uniform(-self.speed, self.speed))
                    need = int(np.ceil(self.crop * factor)) + 8
                    seg = _to_float(random_crop(x, need, rng))
                    seg = soxr.resample(seg, self.pack.sample_rate * factor, self.pack.sample_rate, quality="LQ")
                    out[b, k] = random_crop(seg.astype(np.float32), self.crop, rng)
                else:
                    out[b, k] = _to_float(random_crop(x, self.crop, rng))
        return clips, out

    def _paired(self, pos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``pos`` with every odd entry replaced by another member of the previous entry's group."""
        out = pos.copy()
        for k in range(1, len(pos), 2):
            a = int(pos[k - 1])
            group = self._members[a]
            if len(group) < 2:
                continue  # alone in its group: keep the random clip drawn for this slot
            r = int(rng.integers(0, len(group) - 1))
            out[k] = group[r + (r >= self._pos[a])]  # any member but the clip itself
        return out

    def _work(self) -> None:
        step = self.step
        while not self._stop.is_set():
            item = (step, *self.make_batch(step))
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            step += 1

    def __iter__(self):
        return self

    def __next__(self) -> tuple[int, np.ndarray, np.ndarray]:
        return self._q.get()

    def close(self) -> None:
        """Stop the batch thread and wait for it: a thread still in numpy or soxr when the interpreter exits
        can abort the process ("terminate called without an active exception")."""
        self._stop.set()
        self._thread.join(timeout=30)
