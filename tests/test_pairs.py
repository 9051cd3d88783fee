"""Batches drawn as pairs of clips from one group (``TrainConfig.pair_clips``): hard negatives for temporal
order's foreign segment."""

from __future__ import annotations

import numpy as np
import pytest

from audioemb.train.data import CropLoader, Pack, clip_groups, partners


def make_pack(groups: list[str] | None, paths: list[str] | None = None) -> Pack:
    n = len(groups if groups is not None else paths)
    lengths = np.full(n, 800, dtype=np.int64)
    audio = (np.arange(n * 800) % 3000).astype(np.int16)
    return Pack(audio, np.arange(n) * 800, lengths, paths or [f"c{i}.flac" for i in range(n)], 16000, groups)


def test_partners_are_the_other_members_of_a_group():
    members, pos = partners(["a", "b", "a", "c", "a"])
    assert [m.tolist() for m in members] == [[0, 2, 4], [1], [0, 2, 4], [3], [0, 2, 4]]
    assert pos.tolist() == [0, 0, 1, 0, 2]


def test_groups_fall_back_to_the_folder():
    pack = make_pack(None, ["x/a.wav", "x/b.wav", "y/c.wav"])
    assert clip_groups(pack) == ["x", "x", "y"]
    assert clip_groups(make_pack(["g1", "g2"])) == ["g1", "g2"]


@pytest.mark.parametrize("world,rank", [(1, 0), (2, 1)])
def test_odd_clips_come_from_the_group_of_the_clip_before(world, rank):
    groups = [f"g{i % 5}" for i in range(40)] + ["alone"]
    pack = make_pack(groups)
    loader = CropLoader(pack, 8, 0.02, n_crops=1, seed=2, pair=True, world=world, rank=rank)
    try:
        hard = 0
        for step in range(60):
            clips, x = loader.make_batch(step)
            assert x.shape == (8, 1, 320)
            again, y = loader.make_batch(step)
            assert np.array_equal(clips, again) and np.array_equal(x, y)  # a pure function of (seed, step)
            assert set(clips.tolist()) <= set(loader.indices.tolist())  # this rank's shard only
            for k in range(1, 8, 2):
                a, b = int(clips[k - 1]), int(clips[k])
                if groups[a] == "alone":
                    continue  # no partner: a random clip stands in
                assert groups[a] == groups[b] and a != b
                hard += 1
        assert hard > 100
    finally:
        loader.close()


def test_without_pairs_the_batch_is_as_before():
    pack = make_pack([f"g{i % 5}" for i in range(40)])
    plain = CropLoader(pack, 8, 0.02, n_crops=1, seed=2)
    paired = CropLoader(pack, 8, 0.02, n_crops=1, seed=2, pair=True)
    try:
        rng = np.random.default_rng([2, 5])
        assert np.array_equal(plain.make_batch(5)[0], plain.indices[rng.integers(0, 40, 8)])
        assert np.array_equal(plain.make_batch(5)[0][::2], paired.make_batch(5)[0][::2])
    finally:
        plain.close()
        paired.close()
