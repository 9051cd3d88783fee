"""Kill ``embed`` and ``index add`` with SIGKILL at random moments; after each resume nothing is lost or doubled.

Marked slow: ``python -m pytest -m slow -s tests/test_kill.py``; the counts it prints are in
docs/reliability.md (``KILLS`` sets the number of kills of each command).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from audioemb.embed import embed_folder, read_embeddings
from audioemb.index import Index

from .procs import alive, child_pids

pytestmark = pytest.mark.slow
KILLS = int(os.environ.get("KILLS", "30"))
JOURNAL = ("manifest.jsonl.next", "embeddings.npy.part", "merge.json")


@pytest.fixture()
def folder(tmp_path, clip_paths):
    d = tmp_path / "c"
    for i in range(160):
        p = clip_paths[i % len(clip_paths)]
        (d / f"g{i % 4}").mkdir(parents=True, exist_ok=True)
        shutil.copy(p, d / f"g{i % 4}" / f"{i:03d}_{p.name}")
    (d / "empty.wav").write_bytes(b"")
    (d / "text.mp3").write_text("not audio")
    return d


def _touch_all(d) -> None:
    """Change every file's mtime, so the next run has the whole folder to (re-)embed."""
    for p in d.rglob("*"):
        if p.is_file():
            st = p.stat()
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def _start(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill(p: subprocess.Popen) -> None:
    """SIGKILL ``p``; its decoder processes must then exit on their own (regression: one with decoded audio
    still to send blocked for ever, an orphan holding its memory)."""
    kids = child_pids(p.pid)
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.time() + 20
    while (left := [k for k in kids if alive(k)]) and time.time() < deadline:
        time.sleep(0.05)
    for k in left:
        os.kill(k, signal.SIGKILL)
    assert not left, f"{len(left)} decoder processes outlived the killed job"


def _kill_run(code: str, at: float) -> bool:
    """Run ``code``, SIGKILL it ``at`` seconds in; True if it finished first."""
    p = _start(code)
    try:
        p.wait(timeout=at)
        return True
    except subprocess.TimeoutExpired:
        _kill(p)
        return False


def _kill_when(code: str, ready, delay: float) -> bool:
    """Run ``code``, SIGKILL it ``delay`` seconds after ``ready()`` first holds (polled every 0.5 ms); True if
    it finished first."""
    p = _start(code)
    while p.poll() is None and not ready():
        time.sleep(0.0005)
    if p.poll() is not None:
        return True
    time.sleep(delay)
    _kill(p)
    return False


def _kills(code: str, full: float, ready, folder, seed: int, stats: dict):
    """Run ``code`` KILLS times; yield after each run that was killed. Two kills in three come at a random
    moment of the run; every third waits for ``ready()`` (the final write started), then strikes 0-20 ms later.
    A run that finishes first bumps every mtime, so the next one has the whole folder to redo."""
    rng = random.Random(seed)
    for i in range(KILLS):
        if _kill_run(code, rng.uniform(0.2, full)) if i % 3 else _kill_when(code, ready, rng.uniform(0, 0.02)):
            stats["finished first"] += 1
            _touch_all(folder)
            continue
        stats["kills"] += 1
        stats["killed while writing"] += ready()
        yield


def _timed(code: str) -> float:
    t0 = time.time()
    assert _start(code).wait() in (0, 1)
    return time.time() - t0


def _check_embed(out, ref) -> int:
    emb, recs = read_embeddings(out)
    paths = [r["path"] for r in recs]
    assert len(paths) == len(set(paths)), "a file appears twice"
    assert emb.shape[0] == sum(r["row"] is not None for r in recs)
    for r in recs:
        if r["row"] is not None:
            np.testing.assert_allclose(emb[r["row"]], ref[r["path"]], atol=1e-5)
    return len(recs)


def test_kill_embed_at_random_moments(folder, tmp_path, tiny_model):
    ref_emb, ref_recs = read_embeddings(embed_folder(folder, tmp_path / "ref", str(tiny_model), progress=False).out)
    ref = {r["path"]: ref_emb[r["row"]] for r in ref_recs if r["row"] is not None}
    out = tmp_path / "out"
    code = (f"from audioemb.embed import embed_folder; embed_folder({str(folder)!r}, {str(out)!r}, "
            f"{str(tiny_model)!r}, progress=False, flush_every=6, workers=2)")
    full = _timed(code)
    shutil.rmtree(out)
    stats = {"kills": 0, "finished first": 0, "killed while writing": 0, "records seen": 0}
    in_merge = lambda: any((out / j).exists() or (out / (j + ".tmp")).exists() for j in JOURNAL)  # noqa: E731
    for _ in _kills(code, full, in_merge, folder, 0, stats):
        stats["records seen"] += _check_embed(out, ref) if out.exists() else 0
    s = embed_folder(folder, out, str(tiny_model), progress=False)
    assert s.total == len(ref_recs) and s.failed == 2
    _, recs = read_embeddings(out)
    assert [r["path"] for r in recs] == [r["path"] for r in ref_recs]
    assert _check_embed(out, ref) == len(ref_recs)
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.npy", "info.json", "manifest.jsonl"]
    print(f"\nkill embed: {stats}")
    assert stats["kills"] >= KILLS // 2


def test_kill_index_add_at_random_moments(folder, tmp_path, tiny_model, clip_paths):
    ref = Index.build(folder, tmp_path / "ref.idx", model=str(tiny_model))
    ref_vecs, ref_items = ref.items()
    want = {it["path"]: v for v, it in zip(ref_vecs, ref_items)}
    held = tmp_path / "held"
    held.mkdir()
    for p in sorted(folder.glob("g[23]/*")):
        p.rename(held / p.name)
    idx_path = tmp_path / "i.idx"
    Index.build(folder, idx_path, model=str(tiny_model))
    code = f"from audioemb.index import Index; Index.load({str(idx_path)!r}).add()"
    stats = {"kills": 0, "finished first": 0, "killed while writing": 0, "searches": 0}
    writing = lambda: any(p.suffix == ".tmp" for p in idx_path.iterdir())  # noqa: E731
    for p in held.glob("*"):  # the held-back files come back: the add has half the folder to embed
        shutil.move(p, folder / ("g2" if int(p.name[:3]) % 4 == 2 else "g3") / p.name)
    full = _timed(code)
    _touch_all(folder)
    for _ in _kills(code, full, writing, folder, 1, stats):
        idx = Index.load(idx_path)  # the last committed version is readable and consistent
        vecs, items = idx.items()
        paths = [f["path"] for f in idx.files]
        assert len(paths) == len(set(paths)) and len({it["path"] for it in items}) == len(items)
        for v, it in zip(vecs, items):
            np.testing.assert_allclose(v, want[it["path"]], atol=1e-5)
        hit = idx.search_vector(vecs[0], k=1)[0]  # the folder holds copies: any of them may rank first
        assert hit.score > 0.999 and np.allclose(want[hit.path], vecs[0], atol=1e-5)
        stats["searches"] += 1
    Index.load(idx_path).add()
    idx = Index.load(idx_path)
    vecs, items = idx.items()
    assert sorted(it["path"] for it in items) == sorted(want)
    for v, it in zip(vecs, items):
        np.testing.assert_allclose(v, want[it["path"]], atol=1e-5)
    assert sorted(f["path"] for f in idx.files) == sorted(f["path"] for f in ref.files)
    print(f"\nkill index add: {stats}")
    assert stats["kills"] >= KILLS // 2
