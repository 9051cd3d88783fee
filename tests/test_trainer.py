"""The trainer end to end on a tiny corpus of real clips: data, checkpoints, resume, export, card."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")

from audioemb.train.data import CropLoader, load_pack  # noqa: E402
from audioemb.train.trainer import TrainConfig, Trainer  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, clips16k):
    root = tmp_path_factory.mktemp("corpus")
    (root / "audio").mkdir()
    (root / "tasks").mkdir()
    rows = []
    for i, w in enumerate(clips16k * 3):
        split = "eval" if i >= len(clips16k) * 2 else "train"
        path = f"audio/c{i:02d}.flac"
        sf.write(root / path, w * (0.5 + 0.1 * (i % 5)), 16000, subtype="PCM_16")
        rows.append({"path": path, "source": "examples", "orig": path, "orig_sr": 16000,
                     "duration_s": len(w) / 16000, "split": split, "group": f"g{i % 4}",
                     "labels": {"kind": "speech" if i % 2 else "other"}, "tasks": ["toy"] if split == "eval" else []})
    manifest = "".join(json.dumps(r) + "\n" for r in rows)
    (root / "manifest.jsonl").write_text(manifest)
    (root / "recipe.json").write_text(json.dumps({
        "recipe_version": 1, "manifest_sha256": hashlib.sha256(manifest.encode()).hexdigest(), "train_hours": 0.01,
        "packages": {"example": {"version": "1"}}}))
    with open(root / "tasks" / "toy.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "group"])
        for r in rows:
            if r["split"] == "eval":
                w.writerow(["../" + r["path"], r["labels"]["kind"], r["group"]])
    return root


def test_pack_and_deterministic_batches(corpus, clips16k):
    pack = load_pack(corpus, log=lambda *_: None)
    assert len(pack) == 2 * len(clips16k)
    assert pack.groups == [f"g{i % 4}" for i in range(len(pack))]  # the manifest's groups, for pair_clips
    assert pack.domains == ["sound"] * len(pack)  # corpus.domains.domain_of each row, for domain_weights
    np.testing.assert_allclose(pack.clip(0), clips16k[0] * 0.5, atol=1e-4)
    a = CropLoader(pack, 4, 0.5, n_crops=2, seed=1)
    b = CropLoader(pack, 4, 0.5, n_crops=2, seed=1, start_step=3)
    try:
        batches = [next(a) for _ in range(4)]
        step, clips, x = next(b)
        assert step == 3 and np.array_equal(clips, batches[3][1]) and np.array_equal(x, batches[3][2])
        assert x.shape == (4, 2, 8000) and x.dtype == np.float32
        fast = CropLoader(pack, 4, 0.5, n_crops=2, seed=1, speed=0.2)
        _, _, y = next(fast)
        fast.close()
        assert y.shape == x.shape and not np.allclose(y, x)
    finally:
        a.close()
        b.close()
    # regression: close() only asked the batch thread to stop; a thread left in numpy or soxr at exit can
    # abort the process (seen once as "terminate called without an active exception" in a DDP rank)
    assert not any(t._thread.is_alive() for t in (a, b, fast))


def test_open_data_reads_the_manifest_once(corpus, tmp_path, monkeypatch):
    import audioemb.train.data as data
    import audioemb.train.runinfo as runinfo

    calls, read = [], data.read_manifest

    def counting(*args, **kwargs):
        calls.append(args)
        return read(*args, **kwargs)

    monkeypatch.setattr(data, "read_manifest", counting)
    monkeypatch.setattr(runinfo, "read_manifest", counting)
    pack, summary = runinfo.open_data(corpus, None, tmp_path, 16000, log=lambda *_: None)
    assert len(calls) == 1 and pack.groups == [f"g{i % 4}" for i in range(len(pack))]
    assert summary["clips"] == len(pack) and summary["files"] == len(pack)


def test_crops_are_cut_before_conversion_with_the_same_values(corpus):
    """make_batch crops the int16 pack before converting: the batch equals crops of the float clips."""
    from audioemb.train.data import random_crop

    pack = load_pack(corpus, log=lambda *_: None)
    loader = CropLoader(pack, 5, 0.7, n_crops=2, seed=3)
    try:
        clips, got = loader.make_batch(11)
    finally:
        loader.close()
    rng = np.random.default_rng([3, 11])
    ref_clips = loader.indices[rng.integers(0, len(loader.indices), 5)]
    ref = np.stack([[random_crop(pack.clip(int(c)), loader.crop, rng) for _ in range(2)] for c in ref_clips])
    assert np.array_equal(clips, ref_clips) and got.dtype == np.float32 and np.array_equal(got, ref)


def test_time_budget_sets_the_length_from_the_measured_speed(corpus, tmp_path, monkeypatch):
    from audioemb.train import trainer as trainer_mod
    from audioemb.train.config import budget_steps

    cfg = replace(tiny_cfg(40), time_budget_s=100.0, warmup_steps=2)
    assert budget_steps(cfg, 10, 40.0, 1.0) == 40  # 60 s left at 1 s/step: the recipe's 40 steps fit
    assert budget_steps(cfg, 10, 90.0, 1.0) == 20
    assert budget_steps(cfg, 10, 200.0, 1.0) == 11  # over budget: stop after the next step
    monkeypatch.setattr(trainer_mod, "BUDGET_WARMUP_STEPS", 1)
    monkeypatch.setattr(trainer_mod, "BUDGET_CALIBRATION_STEPS", 2)
    run, logs = tmp_path / "run", []
    t = Trainer(replace(cfg, time_budget_s=1e-6), corpus, run, log=logs.append)
    assert t.fit()["steps"] == 4  # calibrated at steps 1..3, then over budget: one more step
    assert any("spent before the timing steps ended" in m for m in logs), logs  # said, not run over in silence
    assert json.loads((run / "config.json").read_text())["steps"] == 4
    again = Trainer(replace(cfg, time_budget_s=1e-6), corpus, run, log=lambda *_: None)  # same command resumes
    assert again.step == 4 and again.cfg.steps == 4


def tiny_cfg(steps: int) -> TrainConfig:
    return TrainConfig(name="byol-tiny.test", objective="byol", objective_params={"proj_dim": 16, "hidden": 32},
                       encoder={"type": "audiontt", "channels": 8, "hidden": 32}, steps=steps, batch_size=4,
                       crop_s=0.5, log_every=2, ckpt_every=3, stats_clips=8, warmup_steps=2)


def test_train_resume_export(corpus, tmp_path):
    run = tmp_path / "run"
    first = Trainer(tiny_cfg(6), corpus, run, log=lambda *_: None)
    first.cfg.steps = 3  # stop early, as a killed run would (checkpoint at step 3)
    first.fit()
    saved = {k: v.clone() for k, v in first.objective.state_dict().items()}
    resumed = Trainer(tiny_cfg(6), corpus, run, log=lambda *_: None)
    assert resumed.step == 3
    for k, v in resumed.objective.state_dict().items():
        assert torch.equal(v, saved[k]), k
    out = resumed.fit()
    assert out["steps"] == 6
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 3, 4, 6] and all(np.isfinite(r["loss"]) for r in log)
    with pytest.raises(ValueError, match="other settings"):
        Trainer(tiny_cfg(7), corpus, run, log=lambda *_: None)
    renamed = Trainer(replace(tiny_cfg(6), name="byol-tiny.other"), corpus, run, log=lambda *_: None)
    assert renamed.cfg.name == "byol-tiny.test" and renamed.step == 6  # the name is not learned: the run's is kept

    from audioemb.runtime import load
    from audioemb.train.package import package_run

    (run / "command.json").write_text(json.dumps({"argv": "audioemb train tiny --corpus c --out run"}))
    cfg = package_run(run, tmp_path / "model", corpus, evaluate=True, log=lambda *_: None)
    assert cfg["onnx"]["max_abs_diff_vs_torch"] <= 1e-4
    assert set(cfg["metrics"]["results"]) == {"byol-tiny.test", "byol-tiny.test@random-init", "logmel-stats"}
    card = (tmp_path / "model" / "README.md").read_text()
    assert "audioemb train tiny --corpus c --out run" in card and "| toy |" in card
    m = load(tmp_path / "model")
    assert m.encode(corpus / "audio" / "c00.flac").shape == (m.embedding_dim,)


def _weights(run) -> dict:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(run / "checkpoint.safetensors")).items() if k.startswith("model.")}


def test_reclustering_objective_resumes_exactly(corpus, tmp_path):
    """DeepCluster re-initialises its classifier at each epoch start: a resumed run must draw the same init."""
    cfg = TrainConfig(name="deepcluster-tiny.test", objective="deepcluster",
                      objective_params={"clusters": 3, "hidden": 32, "proj_dim": 16, "pca_dim": 4},
                      encoder={"type": "audiontt", "channels": 8, "hidden": 32}, steps=6, batch_size=4, crop_s=0.5,
                      log_every=2, ckpt_every=2, stats_clips=8, warmup_steps=1, epoch_steps=2)
    Trainer(cfg, corpus, tmp_path / "straight", log=lambda *_: None).fit()

    Trainer(replace(cfg, stop_at=4), corpus, tmp_path / "resumed", log=lambda *_: None).fit()  # stopped at an epoch
    Trainer(cfg, corpus, tmp_path / "resumed", log=lambda *_: None).fit()
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), \
        [k for k in a if not torch.equal(a[k], b[k])]


def test_checkpoint_is_one_file_and_old_format_still_loads(tmp_path):
    """The meta lives in the safetensors header (tensors and meta appear together); a checkpoint written before
    that (meta only in checkpoint.safetensors.json) still loads."""
    from safetensors.torch import load_file, save_file

    from audioemb.train.checkpoint import load_checkpoint, read_meta, save_checkpoint

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, model, opt, {"step": 7, "wall_s": 1.5})
    (tmp_path / "checkpoint.safetensors.json").write_text('{"step": 0}')  # a stale copy is never read
    assert read_meta(path)["step"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors", "checkpoint.safetensors.json"]
    # the old format: tensors without the header entry, meta in the .json beside them
    old = tmp_path / "old"
    old.mkdir()
    save_file(load_file(str(path)), str(old / "checkpoint.safetensors"))
    (old / "checkpoint.safetensors.json").write_text(json.dumps(read_meta(path)))
    model2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-3)
    info = load_checkpoint(old / "checkpoint.safetensors", model2, opt2)
    assert info["step"] == 7 and torch.equal(model2.weight, model.weight)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_slim_checkpoint_exports_like_the_full_one_and_refuses_to_resume(corpus, tmp_path):
    """A weights-only copy (encoder + frontend, as a GPU run brings back) loads for export and scoring."""
    import shutil

    from audioemb.train.checkpoint import slim_checkpoint
    from audioemb.train.heldout import kept_checkpoints
    from audioemb.train.package import load_run

    run, slim = tmp_path / "run", tmp_path / "slim"
    Trainer(replace(tiny_cfg(4), keep_every=2), corpus, run, log=lambda *_: None).fit()
    shutil.copytree(run, slim, ignore=shutil.ignore_patterns("*.safetensors"))
    slim_checkpoint(run / "checkpoint.safetensors", slim / "checkpoint.safetensors")
    for _, path in kept_checkpoints(run):
        slim_checkpoint(path, slim / "kept" / path.name, dtype=torch.float16)
    assert (slim / "checkpoint.safetensors").stat().st_size < (run / "checkpoint.safetensors").stat().st_size / 3
    _, full_obj, _ = load_run(run)
    _, slim_obj, meta = load_run(slim)
    assert meta["step"] == 4 and meta["weights_only"] == ["encoder", "frontend"]
    for k, v in full_obj.encoder.state_dict().items():
        assert torch.equal(v, slim_obj.encoder.state_dict()[k]), k
    with pytest.raises(ValueError, match="weights only"):
        Trainer(replace(tiny_cfg(4), keep_every=2), corpus, slim, log=lambda *_: None)
    from safetensors.torch import load_file

    from audioemb.train.checkpoint import load_weights

    kept = load_file(str(slim / "kept" / "checkpoint-0000002.safetensors"))
    assert all(v.dtype == torch.float16 for v in kept.values() if v.is_floating_point())
    load_weights(slim_obj, {k[6:]: v for k, v in kept.items()}, ["encoder", "frontend"])
    with pytest.raises(KeyError, match="missing"):
        load_weights(slim_obj, {}, ["encoder"])
    from audioemb.train.heldout import score_kept

    assert [r["step"] for r in score_kept(slim, corpus, log=lambda *_: None)] == [2, 4]


def test_auto_precision_is_fp32_where_the_cpu_emulates_bfloat16(corpus, tmp_path, monkeypatch):
    """On an AVX2-only CPU bf16 autocast is emulated (13 against 160 views/s in fp32): "auto", the default, picks
    fp32 there and bf16 where the CPU has AVX-512 BF16 or AMX; an explicit bf16 is kept, with a warning."""
    from audioemb.train.config import resolve_precision

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert TrainConfig(name="x", objective="byol").precision == "auto"
    run = tmp_path / "run"
    t = Trainer(tiny_cfg(2), corpus, run, log=lambda *_: None)
    assert t.cfg.precision == "fp32" and not t._autocast()._enabled
    assert json.loads((run / "env.json").read_text())["precision"] == "fp32"
    t.fit()
    logs: list[str] = []
    again = Trainer(replace(tiny_cfg(2), precision="bf16"), corpus, run, log=lambda *a: logs.append(a[0]))
    assert again.step == 2 and again.cfg.precision == "bf16"  # how a run executes: a resume may change it
    assert any("no native bfloat16" in m for m in logs)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16" and resolve_precision("fp32", "cpu") == "fp32"


def test_a_corpus_run_is_named_by_the_corpus_data_tag(corpus, tmp_path):
    """Regression: `audioemb train R --corpus corpus2` named its model `R.debian`, the v1 tag, unless `--set
    name=` said otherwise; the corpus's recipe.json gives the tag (v1's predates it: `debian`), a folder its name."""
    from audioemb.train.recipes import load_recipe, name_for_data

    assert name_for_data(load_recipe("byol-s"), corpus, None).name == "byol-s.debian"
    v2 = tmp_path / "corpus2"
    v2.mkdir()
    (v2 / "recipe.json").write_text(json.dumps({"data_tag": "debian2"}))
    assert name_for_data(load_recipe("wav2vec2-s"), v2, None).name == "wav2vec2-s.debian2"
    assert name_for_data(load_recipe("npc-s"), None, [tmp_path / "My Birds!"]).name == "npc-s.My-Birds"


def test_sigterm_saves_the_step_it_stopped_at_and_a_resume_is_exact(corpus, tmp_path):
    """Regression: SIGTERM (a scheduler's limit, `kill`) or Ctrl-C lost every step since the last checkpoint
    (up to ckpt_every - 1) and said nothing. Now the run stops after its current step with a checkpoint of it,
    and the message says how to go on; the resumed run ends with the weights of one that never stopped."""
    import os
    import signal

    from audioemb.train.stopping import TrainingInterrupted

    cfg = replace(tiny_cfg(6), ckpt_every=100, log_every=1)
    Trainer(cfg, corpus, tmp_path / "straight", log=lambda *_: None).fit()

    def kill_at_step_2(rec):
        if rec["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    run, before = tmp_path / "run", signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match=r"stopped by SIGTERM at step 2 of 6, .*run the same command") as e:
        Trainer(cfg, corpus, run, log=lambda *_: None, progress=kill_at_step_2).fit()
    assert e.value.exit_code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before  # the process's own handler is back
    resumed = Trainer(cfg, corpus, run, log=lambda *_: None)
    assert resumed.step == 2
    resumed.fit()
    a, b = _weights(tmp_path / "straight"), _weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)
