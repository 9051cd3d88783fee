"""Batches drawn with a share of crops per domain (``TrainConfig.domain_weights``), so that a domain the data
has little of (sound) still fills its share of every batch."""

from __future__ import annotations

import numpy as np
import pytest

from audioemb.train.data import CropLoader, DataError, Pack, clip_domains, domain_probs

pytest.importorskip("torch")  # the training config (and its errors) import torch

from audioemb.train.config import ConfigError, TrainConfig


def make_pack(domains: list[str] | None, paths: list[str] | None = None) -> Pack:
    n = len(domains if domains is not None else paths)
    audio = (np.arange(n * 800) % 3000).astype(np.int16)
    return Pack(audio, np.arange(n) * 800, np.full(n, 800, dtype=np.int64),
                paths or [f"c{i}.flac" for i in range(n)], 16000, None, domains)


def test_each_named_domain_gets_its_share_and_others_none():
    doms = ["speech"] * 70 + ["music"] * 25 + ["sound"] * 5
    p = domain_probs(doms, {"speech": 2, "music": 1, "sound": 1})
    names = np.array(doms)
    assert p.sum() == pytest.approx(1.0)
    assert [p[names == d].sum() for d in ("speech", "music", "sound")] == pytest.approx([0.5, 0.25, 0.25])
    assert len(set(p[names == "sound"])) == 1  # uniform within a domain
    q = domain_probs(doms, {"music": 1})
    assert q[names == "music"].sum() == pytest.approx(1.0) and q[names != "music"].sum() == 0
    with pytest.raises(DataError, match="names 'noise', but no training clip is in it"):
        domain_probs(doms, {"noise": 1, "speech": 1})


def test_domains_fall_back_to_the_top_folder():
    pack = make_pack(None, ["field/birds/a.wav", "field/birds/x/b.wav@10", "field/rain/c.wav", "field/loose.wav",
                            "other/d.wav"])  # --data field/ --data other/: paths start with the folder's name
    assert clip_domains(pack) == ["field/birds", "field/birds", "field/rain", "field", "other"]
    assert clip_domains(make_pack(["speech", "sound"])) == ["speech", "sound"]


@pytest.mark.parametrize("world,rank", [(1, 0), (2, 1)])
def test_weighted_batches_follow_the_shares_and_stay_a_function_of_the_step(world, rank):
    doms = ["speech"] * 180 + ["sound"] * 20
    loader = CropLoader(make_pack(doms), 16, 0.02, n_crops=1, seed=3, world=world, rank=rank,
                        weights={"speech": 1, "sound": 1})
    try:
        drawn = []
        for step in range(150):
            clips, x = loader.make_batch(step)
            again, y = loader.make_batch(step)
            assert np.array_equal(clips, again) and np.array_equal(x, y)
            assert set(clips.tolist()) <= set(loader.indices.tolist())  # this rank's shard only
            drawn += [doms[int(c)] for c in clips]
        share = drawn.count("sound") / len(drawn)
        assert 0.45 < share < 0.55, share  # half, where uniform draws would give 10 %
    finally:
        loader.close()


def test_without_weights_the_batch_is_as_before():
    pack = make_pack(["speech"] * 40)
    plain = CropLoader(pack, 8, 0.02, n_crops=1, seed=2)
    try:
        rng = np.random.default_rng([2, 5])
        assert np.array_equal(plain.make_batch(5)[0], plain.indices[rng.integers(0, 40, 8)])
    finally:
        plain.close()


@pytest.mark.parametrize("bad", [{"sound": -1}, {"sound": 0}, {"sound": "a lot"}, ["sound"]])
def test_bad_domain_weights_are_refused(bad):
    with pytest.raises(ConfigError, match="domain_weights must map domains to weights"):
        TrainConfig(name="x", objective="byol", domain_weights=bad)
