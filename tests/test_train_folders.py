"""Training on any folder of audio: the decoded cache, bad files, data.json, --init and the CLI's errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")

from audioemb.train.config import ConfigError, TrainConfig  # noqa: E402
from audioemb.train.folders import DataError, file_list_sha256, folder_pack  # noqa: E402
from audioemb.train.trainer import Trainer  # noqa: E402


@pytest.fixture()
def user_folder(tmp_path, clip_paths):
    root = tmp_path / "my sounds"
    (root / "deep" / "er").mkdir(parents=True)
    for p in clip_paths:
        shutil.copy(p, root / p.name)
    # a 25-s stereo file at 22.05 kHz: indexed as three segments of at most 10 s
    t = np.arange(int(25 * 22050)) / 22050
    sf.write(root / "deep" / "er" / "long.wav", np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1) * 0.3, 22050)
    (root / "deep" / "notes.mp3").write_text("this is not audio")
    (root / "empty.wav").write_bytes(b"")
    (root / "readme.txt").write_text("ignored: not an audio extension")
    return root


def tiny_cfg(steps: int = 2, **kw) -> TrainConfig:
    settings = {"batch_size": 4, "crop_s": 0.5, "log_every": 1, "ckpt_every": 2, "stats_clips": 8, "warmup_steps": 1,
                "threads": 1, **kw}
    return TrainConfig(name="byol-tiny.test", objective="byol", objective_params={"proj_dim": 16, "hidden": 32},
                       encoder={"type": "audiontt", "channels": 8, "hidden": 32}, steps=steps, **settings)


def test_folder_pack_decodes_once_skips_bad_files_and_stays_out_of_the_folder(user_folder, tmp_path, clip_paths):
    before = sorted(p.name for p in user_folder.rglob("*"))
    logs: list[str] = []
    pack, info = folder_pack([user_folder], tmp_path / "cache", 16000, workers=1, log=logs.append)
    assert sorted(p.name for p in user_folder.rglob("*")) == before  # nothing written inside the user's folder
    assert info["files"] == len(clip_paths) + 1 and info["skipped"] == 2
    skipped = [json.loads(line)["path"] for line in (tmp_path / "cache" / "errors.jsonl").read_text().splitlines()]
    assert sorted(skipped) == ["my sounds/deep/notes.mp3", "my sounds/empty.wav"]
    assert sum(m.startswith("  skipped") for m in logs) == 2  # each bad file reported once
    long_segments = [p for p in pack.paths if p.startswith("my sounds/deep/er/long.wav")]
    assert len(long_segments) == 3 and pack.sample_rate == 16000
    assert info["hours"] == pytest.approx(float(pack.lengths.sum()) / 16000 / 3600, abs=1e-4)
    used = [f"my sounds/{p.name}" for p in clip_paths] + ["my sounds/deep/er/long.wav"]
    assert info["file_list_sha256"] == file_list_sha256(used)
    # opened again: no decoding (the cache is reused)
    logs.clear()
    folder_pack([user_folder], tmp_path / "cache", 16000, workers=1, log=logs.append)
    assert not any("decoding" in m for m in logs)


def test_missing_or_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        folder_pack([tmp_path / "nope"], tmp_path / "c")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        folder_pack([tmp_path / "empty"], tmp_path / "c")


def test_train_on_a_folder_writes_run_info(user_folder, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_cfg(2), None, run, log=lambda *_: None, data=[user_folder]).fit()
    data = json.loads((run / "data.json").read_text())
    env = json.loads((run / "env.json").read_text())
    assert data["kind"] == "folders" and data["folders"] == [str(user_folder.resolve())] and data["licences"] == []
    assert env["device"] == "cpu" and env["world_size"] == 1
    assert (run / "cache").is_dir() and not (user_folder / "cache").exists()
    # a resumed run may change how it runs (threads, device, logging), not what it learns
    Trainer(tiny_cfg(2, log_every=5), None, run, log=lambda *_: None, data=[user_folder])
    with pytest.raises(ConfigError, match="other settings"):
        Trainer(tiny_cfg(2, lr=1.0), None, run, log=lambda *_: None, data=[user_folder])
    # regression: a resume on other data, or from an --init model, rewrote data.json / init.json, so the card
    # described data and a start the run never had
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(next(user_folder.glob("*.wav")), other / "one.wav")
    with pytest.raises(ConfigError, match="trained on other data"):
        Trainer(tiny_cfg(2), None, run, log=lambda *_: None, data=[other])
    assert json.loads((run / "data.json").read_text()) == data


def test_a_resume_keeps_its_start(user_folder, tmp_path, tiny_model):
    from dataclasses import replace

    model = json.loads((tiny_model / "config.json").read_text())  # the same encoder: only the start differs
    cfg = replace(tiny_cfg(2), encoder=model["encoder"], frontend=model["frontend"])
    run = tmp_path / "run"
    Trainer(cfg, None, run, log=lambda *_: None, data=[user_folder]).fit()
    with pytest.raises(ConfigError, match="started from random weights, not --init"):
        Trainer(cfg, None, run, log=lambda *_: None, data=[user_folder], init=str(tiny_model))
    assert not (run / "init.json").exists()


def test_a_folder_given_twice_or_inside_another_is_counted_once(user_folder, tmp_path):
    """Regression: ``--data A --data A`` (or ``--data A --data A/sub``) decoded and counted its files twice."""
    _, once = folder_pack([user_folder], tmp_path / "c1", 16000, workers=1, log=lambda *_: None)
    _, twice = folder_pack([user_folder, user_folder / "deep", user_folder], tmp_path / "c2", 16000, workers=1,
                           log=lambda *_: None)
    assert (twice["files"], twice["clips"], twice["file_list_sha256"]) == \
        (once["files"], once["clips"], once["file_list_sha256"])


def test_init_continues_from_a_model(user_folder, tmp_path, tiny_model):
    from audioemb.nn.export import load_module

    run, logs = tmp_path / "run", []
    tr = Trainer(tiny_cfg(1), None, run, log=logs.append, data=[user_folder], init=str(tiny_model))
    assert f"starting from {tiny_model} (tiny-ntt.test): its encoder weights, its frontend statistics kept" in logs
    start = load_module(tiny_model)
    for k, v in start.encoder.state_dict().items():
        assert torch.equal(tr.encoder.state_dict()[k].contiguous(), v), k
    assert torch.equal(tr.frontend.mean, start.frontend.mean)  # kept without --renormalise
    init = json.loads((run / "init.json").read_text())
    assert init["model"] == str(tiny_model) and init["renormalised"] is False
    tr2 = Trainer(tiny_cfg(1), None, tmp_path / "run2", log=lambda *_: None, data=[user_folder],
                  init=str(tiny_model), renormalise=True)
    assert not torch.equal(tr2.frontend.mean, start.frontend.mean)


def test_init_from_a_latents_readout_trains_the_whole_encoder(user_folder, tmp_path, tiny_frame_model):
    """Regression: `--init` from a folder read out from its conv latents (as `wav2vec2-s.debian2` is) took its
    inference readout into training, which refuses it; the run now trains every encoder weight with the context
    readout and says so in init.json."""
    from audioemb.nn.export import load_module
    from audioemb.train.repackage import package_readout

    lat = tmp_path / "lat"
    package_readout(tiny_frame_model, lat, "latents", None, evaluate=False, log=lambda *_: None)
    cfg = TrainConfig(name="wav2vec2-tiny.test", objective="wav2vec2", encoder={"type": "framenet"}, steps=1,
                      batch_size=4, crop_s=0.5, log_every=1, ckpt_every=2, stats_clips=8, warmup_steps=1, threads=1)
    run = tmp_path / "run"
    tr = Trainer(cfg, None, run, log=lambda *_: None, data=[user_folder], init=str(lat))
    assert "readout" not in tr.cfg.encoder and tr.encoder.readout == "context" and tr.encoder.n_layers == 3
    for k, v in load_module(lat).encoder.state_dict().items():
        assert torch.equal(tr.encoder.state_dict()[k].contiguous(), v), k
    assert "trained with the context readout" in json.loads((run / "init.json").read_text())["readout"]
    tr.fit()


def test_init_needs_only_the_torch_weights(user_folder, tmp_path, tiny_model):
    """A folder with config.json and model.safetensors but no model.onnx (how a model travels to a lent GPU
    within its 64 MiB) is enough to continue from; a changed safetensors is still refused."""
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model / name, weights / name)
    Trainer(tiny_cfg(1), None, tmp_path / "run", log=lambda *_: None, data=[user_folder], init=str(weights))
    with open(weights / "model.safetensors", "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x00" if f.read(1) != b"\x00" else b"\x01")
    with pytest.raises(DataError, match="sha256"):
        Trainer(tiny_cfg(1), None, tmp_path / "run2", log=lambda *_: None, data=[user_folder], init=str(weights))


@pytest.mark.parametrize("args, message", [
    (["--data", "{tmp}/missing"], "not a folder"),
    (["--data", "{tmp}/empty"], "no audio files"),
    (["--corpus", "{tmp}/empty"], "not a corpus"),
    (["--data", "{tmp}/empty", "--set", "nonsense=1"], "unknown training settings"),
    (["--data", "{tmp}/empty", "--device", "tpu"], "device must be"),
    # regression: these were tracebacks, most of them after every file was decoded
    (["--data", "{tmp}/empty", "--set", "views.mixupp=0"], "unexpected keyword argument 'mixupp'"),
    (["--data", "{tmp}/empty", "--set", "lr=fast"], "lr must be a number, not 'fast'"),
    (["--data", "{tmp}/empty", "--set", "steps.x=1"], "steps is a setting, not a group of settings"),
    (["--data", "{tmp}/empty", "--set", "frontend.n_mels=128"], "do not make a model that runs"),
    (["--data", "{tmp}/empty", "--init", "byol-s.debian2", "--set", "encoder.hidden=48"],
     "fixes the encoder and the frontend (they are the model's): drop --set encoder.hidden"),
])
def test_cli_user_mistakes_are_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    cmd = [sys.executable, "-m", "audioemb.train", "byol-s", "--out", str(tmp_path / "run"),
           *[a.format(tmp=tmp_path) for a in args]]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


def test_plain_progress_lines_give_an_eta_from_this_process_pace(capsys):
    """Without a terminal (nohup, CI) each log line ends with the time left at the pace seen so far."""
    from cli.train import _Progress

    p = _Progress()
    p.bar = None
    rec = {"loss": 1.0, "views_per_s": 100.0, "collapse_std": 0.5, "steps": 1000}
    p.update({**rec, "step": 500, "wall_s": 3000.0})  # resumed at step 500: its first 50 min do not count
    p.update({**rec, "step": 600, "wall_s": 3060.0})  # 100 steps a minute here, 400 steps left
    lines = capsys.readouterr().out.splitlines()
    assert "ETA" not in lines[0] and lines[1].endswith("ETA 4.0 min")


def test_the_recorded_command_is_the_one_that_trained(tmp_path, monkeypatch):
    """Regression: a first attempt that failed before its first checkpoint (a bad --set) kept its command in
    command.json, and the card quoted it above the run that a corrected command trained."""
    from audioemb.cli.train import _record_command

    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["audioemb", "train", "byol-s", "--set", "views.mixup=abc"])
    _record_command(run)
    monkeypatch.setattr(sys, "argv", ["audioemb", "train", "byol-s", "--set", "views.mixup=0.3"])
    _record_command(run)
    rec = json.loads((run / "command.json").read_text())
    assert rec["argv"].endswith("views.mixup=0.3") and rec["cwd"] == str(Path.cwd())  # relative paths read from it
    from audioemb.train.package import _command

    assert _command(rec) == f"{rec['argv']}  # run in {Path.cwd()}"
    (run / "checkpoint.safetensors").write_bytes(b"")  # the run has trained: a resume keeps its command
    monkeypatch.setattr(sys, "argv", ["audioemb", "train", "byol-s", "--set", "log_every=5"])
    _record_command(run)
    assert json.loads((run / "command.json").read_text())["argv"].endswith("views.mixup=0.3")


def test_more_clusters_than_clips_is_one_clear_error(user_folder, tmp_path):
    """Regression: `deepcluster-s` (256 clusters) on a folder of a few dozen clips was a faiss traceback."""
    cfg = TrainConfig(name="deepcluster-tiny.test", objective="deepcluster",
                      objective_params={"clusters": 64, "hidden": 32, "proj_dim": 16, "pca_dim": 8},
                      encoder={"type": "audiontt", "channels": 8, "hidden": 32}, steps=1, batch_size=4, crop_s=0.5,
                      warmup_steps=1, threads=1)
    with pytest.raises(ValueError, match=r"objective_params.clusters \(64\) is more than the \d+ training clips"):
        Trainer(cfg, None, tmp_path / "run", log=lambda *_: None, data=[user_folder])


def test_sigterm_while_decoding_leaves_no_temporary_cache(tmp_path, clip_paths):
    """Regression: SIGTERM while `train --data` decoded the audio killed it at once, leaving a temporary
    `.pack-*.int16.PID.tmp` (as large as the decoded audio) that nothing removed, and printing nothing."""
    import signal
    import time

    data = tmp_path / "data"
    data.mkdir()
    for i in range(40):
        for p in clip_paths:
            shutil.copy(p, data / f"{i}_{p.name}")
    cmd = [sys.executable, "-m", "audioemb", "train", "byol-s", "--data", str(data), "--out", str(tmp_path / "run"),
           "--set", "steps=2", "--set", "batch_size=4", "--set", "threads=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:  # wait until it decodes
        lines.append(line)
        if "decoding" in line:
            break
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, "".join(lines) + rest
    assert "stopped by SIGTERM before training started; run the same command again" in rest
    assert not list((tmp_path / "run" / "cache").glob(".*.tmp"))


def test_fewer_clips_than_a_batch_is_said(user_folder, tmp_path):
    """A folder of a few clips with the recipe's batch: each batch repeats clips (a contrastive objective meets a
    clip as its own negative); said once at the start instead of passing in silence."""
    logs = []
    Trainer(tiny_cfg(1, batch_size=64), None, tmp_path / "run", log=logs.append, data=[user_folder])
    assert any(m.startswith("note: ") and "training clips for batches of 64: each batch repeats clips" in m
               for m in logs), logs


def test_a_file_list_with_a_name_that_is_not_utf8_has_a_hash():
    """Regression: `export --standardize` over a folder holding a Latin-1 file name was a UnicodeEncodeError;
    valid names hash as before (the shipped cards' figures stand)."""
    import hashlib

    assert file_list_sha256(["b.wav", "a.wav"]) == hashlib.sha256(b"a.wav\nb.wav\n").hexdigest()
    assert file_list_sha256(["caf\udce9.wav"]) == hashlib.sha256(b"caf\xe9.wav\n").hexdigest()
