"""Two-process DDP training with gloo (torchrun): ranks hold identical weights after every step, and resume
is exact."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file  # noqa: E402

from audioemb.objectives import get_objective  # noqa: E402


def recipe(tmp_path, objective: str, steps: int):
    cls = get_objective(objective)  # each objective declares its own smoke-test settings
    r = {"name": f"{objective}-tiny.test", "objective": objective, "objective_params": cls.tiny_params,
         "encoder": cls.tiny_encoder, "steps": steps, "batch_size": 4,
         "crop_s": 0.5, "log_every": 1, "ckpt_every": 2, "stats_clips": 8, "warmup_steps": 1, "threads": 1,
         "check_sync": 1}
    p = tmp_path / f"{objective}-{steps}.json"
    p.write_text(json.dumps(r))
    return p


def torchrun(recipe_path, data, out, extra=()):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "audioemb.train", str(recipe_path), "--data", str(data), "--out", str(out), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]


@pytest.fixture(scope="module")
def data(tmp_path_factory, clip_paths):
    d = tmp_path_factory.mktemp("clips")
    for p in clip_paths:
        shutil.copy(p, d / p.name)
    return d


@pytest.mark.parametrize("objective", ["byol", "moco_v2"])
def test_two_ranks_stay_identical_and_resume_exactly(tmp_path, data, objective):
    torchrun(recipe(tmp_path, objective, 4), data, tmp_path / "straight")
    ranks = [[json.loads(line) for line in (tmp_path / "straight" / f"sync-rank{r}.jsonl").read_text().splitlines()]
             for r in (0, 1)]
    assert [r["step"] for r in ranks[0]] == [1, 2, 3, 4] == [r["step"] for r in ranks[1]]
    for a, b in zip(*ranks):
        assert a["checksum"] == b["checksum"] and a["max_rank_diff"] == 0.0
    assert ranks[0][0]["checksum"] != ranks[0][-1]["checksum"]  # the weights did change
    env = json.loads((tmp_path / "straight" / "env.json").read_text())
    assert env["world_size"] == 2 and env["device"] == "cpu"
    # stop at step 2 (a checkpoint), resume to 4: the same weights as the straight run
    torchrun(recipe(tmp_path, objective, 4), data, tmp_path / "resumed", ["--set", "stop_at=2"])
    torchrun(recipe(tmp_path, objective, 4), data, tmp_path / "resumed")
    a = load_file(str(tmp_path / "straight" / "checkpoint.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "checkpoint.safetensors"))
    for k, v in a.items():
        if k.startswith("model.") and "running_" not in k and "num_batches" not in k:
            assert torch.equal(v, b[k]), k
