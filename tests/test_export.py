"""`audioemb export` on run folders (and `--from MODEL --readout NAME`): truthful cards from data/env/init
records, --eval figures, atomic writes, and one-line errors with exit code 2 for a user's mistakes."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from audioemb.cli import app  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from audioemb.eval.export_eval import ExportError  # noqa: E402
from audioemb.runtime import load  # noqa: E402
from audioemb.train import package  # noqa: E402
from audioemb.train.package import package_run  # noqa: E402
from audioemb.train.repackage import package_readout  # noqa: E402
from audioemb.train.trainer import TrainConfig, Trainer  # noqa: E402
from tests.test_trainer import corpus as tiny_corpus  # noqa: E402, F401  (the trainer tests' tiny corpus)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, request):
    """(corpus, run folder) of a 2-step BYOL run on the trainer tests' tiny corpus of the example clips."""
    corpus = request.getfixturevalue("tiny_corpus")
    root = tmp_path_factory.mktemp("export")
    cfg = TrainConfig(name="byol-tiny.debian", objective="byol", objective_params={"proj_dim": 16, "hidden": 32},
                      encoder={"type": "audiontt", "channels": 8, "hidden": 32}, steps=2, batch_size=4, crop_s=0.5,
                      log_every=1, ckpt_every=2, stats_clips=8, warmup_steps=1)
    Trainer(cfg, corpus, root / "run", log=lambda *_: None).fit()
    (root / "run" / "command.json").write_text(json.dumps({"argv": "audioemb train byol-s --data my_birds"}))
    return corpus, root / "run"


@pytest.fixture
def labelled(tmp_path, clip_paths):
    """A labelled folder: two classes of real clips (and copies at another gain)."""
    for p in clip_paths:
        d = tmp_path / "labelled" / ("speech" if "speech" in p.name else "other")
        d.mkdir(parents=True, exist_ok=True)
        w, sr = sf.read(p, dtype="float32")
        sf.write(d / f"{p.stem}.wav", w, sr)
        sf.write(d / f"{p.stem}-quiet.wav", w * 0.3, sr)
    return tmp_path / "labelled"


def _folder_run(run, tmp_path, tiny_model, device="cuda"):
    """A copy of ``run`` with the records of a run on the user's folders, on a GPU, from a starting model."""
    dst = tmp_path / "run-folders"
    shutil.copytree(run, dst)
    (dst / "data.json").write_text(json.dumps({
        "kind": "folders", "folders": [str(tmp_path / "my_birds")], "files": 7, "skipped": 1, "clips": 9,
        "hours": 0.0123, "file_list_sha256": "ab" * 32, "licences": []}))
    (dst / "env.json").write_text(json.dumps({
        "device": device, "device_name": "NVIDIA H100 80GB HBM3", "machine": "Intel Xeon Platinum, 16 cores",
        "world_size": 2, "threads_per_process": 4, "precision": "bf16", "torch": torch.__version__}))
    start = json.loads((tiny_model / "config.json").read_text())
    (dst / "init.json").write_text(json.dumps({
        "model": str(tiny_model), "name": start["name"], "resolved": str(tiny_model), "sha256": start["files"],
        "renormalised": True}))
    return dst


def test_folder_run_card_is_truthful_and_has_eval_figures(trained, tmp_path, tiny_model, labelled):
    _, run = trained
    out = tmp_path / "models" / "birds"
    cfg = package_run(_folder_run(run, tmp_path, tiny_model), out, corpus=None, name="my-birds.v1",
                      eval_data=labelled, seeds=2, log=lambda *_: None)
    assert cfg["name"] == "my-birds.v1"
    card = (out / "README.md").read_text()
    for text in ("# my-birds.v1", "`my_birds`", "7 audio files (1 unreadable files skipped)", "0.0123 h",
                 "abababababababab", "a CUDA GPU, NVIDIA H100 80GB HBM3 (Intel Xeon Platinum, 16 cores)",
                 "2 processes", "started from `tiny-ntt.test`", "re-estimated on the new data",
                 "No corpus figures: exported without a corpus", "Held-out data given at export: `labelled`",
                 "Few-shot accuracy", "16 kHz", "audioemb records no licence",
                 "collapse watch: std of L2-normalised embeddings of the --eval clips"):  # not "held-out"
        assert text in card, text
    for wrong in ("Debian", "GPL", "byol-tiny.debian", "this project's CPU machine"):
        assert wrong not in card, wrong
    ue = cfg["metrics"]["user_eval"]
    assert set(ue["results"]) == {"my-birds.v1", "tiny-ntt.test", "my-birds.v1@random-init", "logmel-stats"}
    from audioemb.eval.export_eval import labelled_sha256, open_eval_data

    copy = tmp_path / "copied" / "labelled"  # the card identifies the set by content, wherever it lies
    shutil.copytree(labelled, copy)
    assert ue["sha256"] == labelled_sha256(open_eval_data(copy, log=lambda *_: None))
    assert f"`labelled` (sha256 `{ue['sha256'][:16]}…` of its files, sizes and labels)" in card
    rand = ue["results"]["my-birds.v1@random-init"]["labelled"]
    assert rand["seeds"] == 2 and set(rand["seed_std"]) >= {"probe_acc", "knn_p10", "fewshot_acc"}
    assert "heldout_tasks" not in cfg["metrics"] and "Change over the starting model `tiny-ntt.test`" in card
    assert json.loads((out / "config.json").read_text())["training"]["data"]["folders"] == ["my_birds"]


def test_export_names_the_out_folder_for_a_folder_run_and_scores_a_corpus(trained, tmp_path, tiny_model):
    corpus, run = trained
    out = tmp_path / "birds-model"
    cfg = package_run(_folder_run(run, tmp_path, tiny_model, device="cpu"), out, corpus=corpus, seeds=1,
                      log=lambda *_: None)
    assert cfg["name"] == "birds-model"  # never the recipe's ".debian" name for a model of the user's audio
    assert set(cfg["metrics"]["results"]) >= {"birds-model", "tiny-ntt.test", "birds-model@random-init",
                                              "logmel-stats"}
    card = (out / "README.md").read_text()
    assert "CPU (Intel Xeon Platinum, 16 cores)" in card and "NVIDIA" not in card
    assert "embeddings of held-out corpus clips" in card
    from audioemb.train.package import waves_source

    assert waves_source(None, False) == "clips of the training folders (not held out)"


def test_legacy_run_needs_its_corpus(trained, tmp_path):
    corpus, run = trained
    old = tmp_path / "old-run"
    shutil.copytree(run, old)
    for f in ("data.json", "env.json", "init.json"):
        (old / f).unlink(missing_ok=True)
    with pytest.raises(ExportError, match="predates"):
        package_run(old, tmp_path / "m0", corpus=None, evaluate=False, log=lambda *_: None)
    cfg = package_run(old, tmp_path / "m1", corpus=corpus, evaluate=False, log=lambda *_: None)
    assert cfg["name"] == "byol-tiny.debian"
    card = (tmp_path / "m1" / "README.md").read_text()
    assert "the run records no env.json" in card and "example (licence not recorded" in card


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_interrupted_export_leaves_nothing_half_written(trained, tmp_path, monkeypatch):
    corpus, run = trained
    out = tmp_path / "models" / "m"
    package_run(run, out, corpus, evaluate=False, log=lambda *_: None)
    before = _snapshot(out)
    stale = out.parent / ".m.export-99999999"  # left by an export killed earlier: no such process
    stale.mkdir()

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(package, "write_card", interrupted)
    with pytest.raises(KeyboardInterrupt):
        package_run(run, out, corpus, evaluate=False, log=lambda *_: None)
    assert _snapshot(out) == before  # the previous export is untouched
    with pytest.raises(KeyboardInterrupt):
        package_run(run, tmp_path / "models" / "fresh", corpus, evaluate=False, log=lambda *_: None)
    assert sorted(p.name for p in out.parent.iterdir()) == ["m"]  # no partial folder, stale one removed


def test_export_refuses_to_replace_a_folder_that_is_not_a_model(trained, tmp_path):
    corpus, run = trained
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not a model folder"):
        package_run(run, precious, corpus, evaluate=False, log=lambda *_: None)
    assert (precious / "notes.txt").read_text() == "keep me"


def _one_line_error(args, needle):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], r.output


def test_export_and_eval_errors_are_one_line_with_exit_code_2(trained, tmp_path, clip_paths):
    corpus, run = trained
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "a" / "readme.txt").write_text("no audio here")
    _one_line_error(["export", str(tmp_path / "nope"), "-o", str(tmp_path / "o")], "no such run folder")
    _one_line_error(["export", str(empty), "-o", str(tmp_path / "o")], "not a training run")
    _one_line_error(["export", str(run), "-o", str(tmp_path / "o"), "--eval", str(tmp_path / "nope.csv")],
                    "--eval")
    _one_line_error(["export", str(run), "-o", str(tmp_path / "o"), "--corpus", str(tmp_path / "nope")], "--corpus")
    _one_line_error(["export", "-o", str(tmp_path / "o")], "give a RUN folder")
    _one_line_error(["eval", str(tmp_path / "nope")], "no such file or folder")
    _one_line_error(["eval", str(empty), "--no-baselines"], "no audio files")
    _one_line_error(["eval", str(corpus / "tasks" / "toy.csv"), "--model", "no-such-model.x"], "unknown model")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("file,class\na.wav,x\n")
    _one_line_error(["eval", str(bad_csv)], "needs a header")
    assert not (tmp_path / "o").exists()


def test_eval_cli_prints_few_shot_and_seeded_random_init(tmp_path, tiny_model, labelled):
    out = tmp_path / "scores.json"
    r = CliRunner().invoke(app, ["eval", str(labelled), "--model", str(tiny_model), "--seeds", "2", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "few-shot accuracy (5 per class)" in r.output and " ± " in r.output
    res = json.loads(out.read_text())["results"]
    assert set(res) == {"tiny-ntt.test", "tiny-ntt.test@random-init", "logmel-stats"}
    assert res["tiny-ntt.test@random-init"]["labelled"]["seeds"] == 2
    assert 0.0 <= res["tiny-ntt.test"]["labelled"]["fewshot_acc"] <= 1.0
    assert np.isfinite(res["logmel-stats"]["labelled"]["fewshot_std"])


def test_eval_cli_keeps_two_models_of_one_name_apart(tmp_path, tiny_model, labelled):
    """An export scored beside the shipped model it came from has the same name: both rows and both random-init
    baselines are kept (before, the second's rows and random-init seeds overwrote the first's under the same names)."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    out = tmp_path / "scores.json"
    r = CliRunner().invoke(app, ["eval", str(labelled), "-m", str(tiny_model), "-m", str(copy), "--seeds", "2",
                                 "--json", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())["results"]
    other = f"tiny-ntt.test ({copy})"
    assert set(res) == {"tiny-ntt.test", "tiny-ntt.test@random-init", other, f"{other}@random-init", "logmel-stats"}
    assert res["tiny-ntt.test@random-init"]["labelled"]["seeds"] == 2
    assert res[f"{other}@random-init"]["labelled"]["seeds"] == 2
    assert res[other]["labelled"] == res["tiny-ntt.test"]["labelled"]  # the same weights score the same


def test_export_quantize_writes_a_measured_variant_beside_the_model(trained, tmp_path):
    _, run = trained
    out = tmp_path / "m"
    r = CliRunner().invoke(app, ["export", str(run), "-o", str(out), "--no-evaluate", "--quantize", "fp16"])
    assert r.exit_code == 0, r.output
    variant = json.loads((tmp_path / "m-fp16" / "config.json").read_text())
    assert variant["quantization"]["parity"]["cosine_min"] > 0.99
    assert (out / "model.onnx").stat().st_size > (tmp_path / "m-fp16" / "model.onnx").stat().st_size


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The tiny run exported and scored on its corpus (1 random-init seed): the folder the readout tests start from."""
    corpus, run = trained
    src = tmp_path_factory.mktemp("readout") / "byol-tiny"
    package_run(run, src, corpus=corpus, seeds=1, log=lambda *_: None)
    return src


def test_another_readout_keeps_the_weights_and_scores_the_new_embedding(trained, exported, tmp_path, clip_paths):
    corpus, src = trained[0], exported
    out = tmp_path / "byol-tiny-fine"
    cfg = package_readout(src, out, "concat_fine", corpus, seeds=1, log=lambda *_: None)

    assert cfg["encoder"]["readout"] == "concat_fine"
    assert cfg["frame_dim"] == 32 + 8 * 32 and cfg["embedding_dim"] == 2 * cfg["frame_dim"]
    a, b = load_file(src / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    old = json.loads((src / "config.json").read_text())["training"]
    assert cfg["training"]["command"] == old["command"] and cfg["training"]["steps"] == old["steps"]
    note = cfg["training"]["after_training"][-1]
    assert "readout `mlp` → `concat_fine`" in note and "64 → 576 dims" in note
    assert note in (out / "README.md").read_text()
    assert {"byol-tiny.debian", "byol-tiny.debian@random-init", "logmel-stats"} <= set(cfg["metrics"]["results"])

    # the MLP half of each frame is what the old readout gave; the conv half is new
    f_old = load(src).encode(clip_paths[:1], output="frames", normalize=False)[0].embeddings
    f_new = load(out).encode(clip_paths[:1], output="frames", normalize=False)[0].embeddings
    assert f_new.shape == (f_old.shape[0], cfg["frame_dim"])
    np.testing.assert_allclose(f_new[:, -32:], f_old, rtol=1e-4, atol=1e-4)


def test_readout_errors_are_one_line(trained, exported, tmp_path, tiny_frame_model):
    corpus, src = trained[0], exported
    with pytest.raises(ExportError, match="already reads out 'mlp'"):
        package_readout(src, tmp_path / "o", "mlp", corpus, evaluate=False, log=lambda *_: None)
    with pytest.raises(ExportError, match="must be one of"):
        package_readout(src, tmp_path / "o", "fine", corpus, evaluate=False, log=lambda *_: None)
    with pytest.raises(ExportError, match="the framenet readout must be one of"):
        package_readout(tiny_frame_model, tmp_path / "o", "concat", corpus, evaluate=False, log=lambda *_: None)
    r = CliRunner().invoke(app, ["export", "--from", str(src), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--readout" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["export", "--from", str(src), "--readout", "mlp", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "already reads out" in r.output
    assert not (tmp_path / "o").exists()


def test_framenet_latents_readout_gives_layer_0_and_reads_back(tiny_frame_model, tmp_path, clip_paths):
    """`--readout latents` on a FrameNet folder: the embedding is what `layer=0` gave, one layer, the same
    weights (the very file, whose sha256 the note quotes); `--readout context` on the result gives the original
    model's embeddings back."""
    import shutil

    from safetensors.numpy import save_file

    from audioemb.modelfolder import write_config

    src_dir = tmp_path / "src"  # as written by an earlier audioemb: the same tensors, other metadata bytes
    shutil.copytree(tiny_frame_model, src_dir)
    save_file(load_file(tiny_frame_model / "model.safetensors"), src_dir / "model.safetensors",
              metadata={"audioemb": "0.0.9", "format": "pt"})
    src_cfg = json.loads((src_dir / "config.json").read_text())
    src_cfg["files"]["model.safetensors"] = hashlib.sha256((src_dir / "model.safetensors").read_bytes()).hexdigest()
    write_config(src_dir, src_cfg)
    tiny_frame_model = src_dir
    lat = tmp_path / "lat"
    cfg = package_readout(tiny_frame_model, lat, "latents", None, evaluate=False, log=lambda *_: None)
    sha = src_cfg["files"]["model.safetensors"]
    assert cfg["files"]["model.safetensors"] == sha and f"sha256 `{sha[:16]}" in cfg["training"]["after_training"][-1]
    assert (lat / "model.safetensors").read_bytes() == (src_dir / "model.safetensors").read_bytes()
    assert cfg["encoder"]["readout"] == "latents" and cfg["n_layers"] == 1
    conv = sum(v.size for k, v in load_file(tiny_frame_model / "model.safetensors").items()
               if k.startswith("encoder.features.") and "running_" not in k and "num_batches" not in k)
    assert cfg["parameters"] == conv < cfg["stored_parameters"] == json.loads(
        (tiny_frame_model / "config.json").read_text())["parameters"]
    assert f"{conv:,} used by its readout, of {cfg['stored_parameters']:,} stored" in (lat / "README.md").read_text()
    a, b = load_file(tiny_frame_model / "model.safetensors"), load_file(lat / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert "readout `context` → `latents`" in cfg["training"]["after_training"][-1]
    src, new = load(tiny_frame_model), load(lat)
    want = src.encode(clip_paths[:3], layer=0, normalize=False)
    np.testing.assert_allclose(new.encode(clip_paths[:3], normalize=False), want, rtol=1e-4, atol=1e-4)

    back = package_readout(lat, tmp_path / "back", "context", None, evaluate=False, log=lambda *_: None)
    assert "readout" not in back["encoder"] and back["n_layers"] == src.n_layers
    np.testing.assert_allclose(load(tmp_path / "back").encode(clip_paths[:3], normalize=False),
                               src.encode(clip_paths[:3], normalize=False), rtol=1e-4, atol=1e-4)


def test_without_a_corpus_parity_is_checked_on_synthetic_signals_and_the_card_has_no_figures(exported, tmp_path):
    src = exported
    assert "results" in json.loads((src / "config.json").read_text())["metrics"]
    r = CliRunner().invoke(app, ["export", "--from", str(src), "--readout", "concat", "-o", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    assert cfg["encoder"]["readout"] == "concat" and cfg["onnx"]["max_abs_diff_vs_torch"] < 1e-3
    assert "results" not in cfg["metrics"] and "no --corpus" in cfg["metrics"]["no_corpus"]


def test_a_small_eval_set_is_checked_up_front_and_described_as_it_was_scored(labelled, tmp_path):
    """Regression: an --eval class with one readable clip was an sklearn traceback after the ONNX export; a set
    of 3 clips per class was scored with fewer folds, shots and neighbours than the card's protocol said."""
    from audioemb.eval.export_eval import open_eval_data
    from audioemb.eval.run import task_info
    from audioemb.eval.tables import _describe

    lone = tmp_path / "lone"
    shutil.copytree(labelled, lone)
    (lone / "bird").mkdir()
    shutil.copy(next((lone / "speech").iterdir()), lone / "bird" / "one.wav")
    with pytest.raises(ExportError, match="class 'bird' of lone has 1 readable clip; each class needs at least 2"):
        open_eval_data(lone, log=lambda *_: None)
    info = task_info(open_eval_data(labelled, log=lambda *_: None))
    assert info["smallest_class"] < 11 and f"its smallest class has {info['smallest_class']} clips" in _describe(info)


def test_a_corpus_option_that_is_not_a_corpus_is_refused(tmp_path):
    """Regression: `export --corpus FOLDER` of a folder that is not a corpus exported with a note and exit 0."""
    from audioemb.eval.export_eval import resolve_corpus

    with pytest.raises(ExportError, match=r"not a corpus built by `audioemb corpus build`.*use --eval"):
        resolve_corpus(tmp_path, None, log=lambda *_: None)
