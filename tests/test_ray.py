"""``embed --ray``: the job on a real local Ray cluster (2 CPUs, started here) gives the local job's rows and
embeddings, bad files included; a killed worker is retried; a re-run embeds only new or changed files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from audioemb.cli import app
from typer.testing import CliRunner

from audioemb.embed import embed_folder, read_embeddings

ray = pytest.importorskip("ray", reason="the [ray] extra")
pytestmark = pytest.mark.slow  # a few minutes: CI runs it (.ci/run runs every test); see docs/scale.md
MARKER = "AUDIOEMB_TEST_DIE_MARKER"


def die_once() -> None:
    """Ray worker setup hook: the first shard write anywhere on the cluster SIGKILLs its own worker."""
    import audioemb.ray_embed as rm

    real = rm.save_npy

    def dying(path, arr):
        marker = os.environ.get(MARKER)
        if marker and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), 9)
        real(path, arr)

    rm.save_npy = dying


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray head with 2 CPUs in its own process (``ray start --block``), stopped at the end."""
    port = _free_port()
    tmp = tmp_path_factory.mktemp("ray")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # the test's own cluster on this machine: no token authentication, whatever ~/.ray/auth_token an earlier Ray
    # command left (with one there the head enabled tokens and the in-process client failed to connect)
    env["RAY_AUTH_MODE"] = "disabled"
    before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env["RAY_worker_niceness"] = "0"  # Ray's default (+15) starves the workers on a busy machine
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--num-cpus", "2",
                             "--port", str(port), "--include-dashboard", "false", "--temp-dir", str(tmp / "t"),
                             "--block"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    marker = tmp / "died"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    deadline = time.time() + 120
    while True:
        try:
            ray.init(address=address, log_to_driver=False, runtime_env={
                "worker_process_setup_hook": "tests.test_ray.die_once",
                "env_vars": {MARKER: str(marker), "PYTHONPATH": root}})
            break
        except Exception:
            if time.time() > deadline or head.poll() is not None:
                head.kill()
                raise
            time.sleep(2)
    yield address, marker
    ray.shutdown()
    head.terminate()
    head.wait(timeout=60)
    if before is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = before


@pytest.fixture()
def folder(tmp_path, clip_paths):
    d = tmp_path / "clips"
    for i, p in enumerate(clip_paths * 2):
        (d / f"g{i % 3}").mkdir(parents=True, exist_ok=True)
        shutil.copy(p, d / f"g{i % 3}" / f"{i:02d}_{p.name}")
    (d / "empty.wav").write_bytes(b"")
    (d / "not_audio.mp3").write_text("hello")
    sf.write(d / "all_nan.wav", np.full(800, np.nan, np.float32), 8000, subtype="FLOAT")
    return d


def _same(a, b) -> None:
    (ea, ra), (eb, rb) = read_embeddings(a), read_embeddings(b)
    assert ra == rb
    np.testing.assert_allclose(ea, eb, atol=1e-5)


def test_ray_job_matches_the_local_job(cluster, folder, tmp_path, tiny_model):
    from audioemb.ray_embed import embed_folder_ray

    address, marker = cluster
    local = embed_folder(folder, tmp_path / "local", str(tiny_model), progress=False, workers=0)
    tm: dict = {}
    s = embed_folder_ray(folder, tmp_path / "ray", str(tiny_model), address=address, files_per_task=4, timings=tm)
    assert marker.exists()  # a worker was killed while writing a shard, and Ray ran its task again
    assert (s.total, s.embedded, s.failed) == (local.total, local.embedded, local.failed) == (19, 16, 3)
    # the phases add up to the run; one timing per task that succeeded (19 files, 4 per task), each within it
    phases = ["model_s", "plan_s", "ray_init_s", "execute_s", "merge_s"]
    assert all(tm[k] >= 0 for k in phases) and sum(tm[k] for k in phases) == pytest.approx(tm["total_s"])
    assert len(tm["tasks"]) == 5 and "_embed_batch" in tm["ray_data_stats"]
    for t in tm["tasks"]:
        assert t["start_s"] >= 0 and t["start_s"] + t["model_s"] + t["embed_s"] + t["write_s"] <= tm["execute_s"]
        assert t["embed_s"] > 0 and t["write_s"] > 0
    _same(tmp_path / "local", tmp_path / "ray")
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == ["info.json", "shards", "shards.json"]

    # a re-run (from the CLI) embeds only the changed, new and failed files; a vanished file is removed
    victim = next(folder.rglob("*piano*.wav"))
    x, sr = sf.read(victim)
    sf.write(victim, x[: len(x) // 2], sr)
    os.utime(victim, ns=(1, 1))
    shutil.copy(victim, folder / "new.wav")
    next(folder.rglob("*.ogg")).unlink()
    r = CliRunner().invoke(app, ["embed", str(folder), "-o", str(tmp_path / "ray"), "--model", str(tiny_model),
                                 "--ray", "--ray-address", address])
    assert r.exit_code == 1 and "failed: empty.wav" in r.output, r.output
    assert r.output.strip().splitlines()[-1].startswith(f"embedded 2 files, kept {local.embedded - 2}, failed 3, "
                                                        "removed 1"), r.output
    embed_folder(folder, tmp_path / "local", str(tiny_model), progress=False, workers=0)
    _same(tmp_path / "local", tmp_path / "ray")

    # readers of the shards
    from audioemb.index import Index

    idx = Index.build(folder, tmp_path / "i", model=str(tiny_model), from_embed=tmp_path / "ray")
    assert len(idx) == sum(r["row"] is not None for r in read_embeddings(tmp_path / "ray")[1]) == 16


def test_local_and_ray_outputs_are_not_mixed(cluster, folder, tmp_path, tiny_model):
    from audioemb.embed import EmbedError
    from audioemb.ray_embed import embed_folder_ray

    embed_folder(folder, tmp_path / "local", str(tiny_model), progress=False, workers=0)
    with pytest.raises(EmbedError, match="local job"):
        embed_folder_ray(folder, tmp_path / "local", str(tiny_model), address=cluster[0])
