"""The embedding standardiser (`audioemb export --from MODEL --standardize N --corpus C`): fitted statistics
inside the weights and the ONNX graph, the runtime's windows, and a random-init baseline refitted the same way."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from audioemb.cli import app  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from audioemb.audio import load as load_audio  # noqa: E402
from audioemb.errors import AudioembError  # noqa: E402
from audioemb.eval.baselines import random_init_model  # noqa: E402
from audioemb.eval.export_eval import ExportError  # noqa: E402
from audioemb.modelfolder import write_config  # noqa: E402
from audioemb.nn.embed_norm import REL_FLOOR, fit_standardizer, pooled_embeddings  # noqa: E402
from audioemb.nn.export import load_module  # noqa: E402
from audioemb.runtime import load  # noqa: E402
from audioemb.train.repackage import package_readout  # noqa: E402
from audioemb.train.standardize import fit_waves, package_standardized  # noqa: E402
from tests.test_export import exported, trained  # noqa: E402, F401  (a tiny run, exported and scored)
from tests.test_trainer import corpus as tiny_corpus  # noqa: E402, F401


def test_fitted_standardizer_centres_and_scales_the_fitting_embeddings(tiny_model, clips16k):
    model = load_module(tiny_model)
    model.embed_norm = fit_standardizer(model, clips16k)
    with torch.inference_mode():
        z = torch.cat([model(torch.from_numpy(w[None]))[0] for w in clips16k]).double().numpy()
    raw = pooled_embeddings(model, clips16k)  # the standardiser is left out while fitting, and put back
    assert model.embed_norm is not None and not np.allclose(raw.std(axis=0), 1, atol=1e-2)
    sd = raw.std(axis=0)
    live = sd >= REL_FLOOR * np.median(sd)  # dimensions that (almost) never vary are centred, not blown up
    assert 0 < live.sum() < len(live)  # the tiny random net has both kinds
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0)[live], 1, atol=1e-3)
    np.testing.assert_array_less(z.std(axis=0)[~live], 1.0)
    np.testing.assert_allclose(z[:, sd == 0], 0, atol=1e-4)
    with pytest.raises(ValueError, match="at least 2 clips"):
        fit_standardizer(model, clips16k[:1])


@pytest.fixture(scope="module")
def standardized(request, tmp_path_factory):
    corpus, src = request.getfixturevalue("trained")[0], request.getfixturevalue("exported")
    out = tmp_path_factory.mktemp("std") / "byol-tiny-std"
    cfg = package_standardized(src, out, corpus, clips=8, seeds=1, log=lambda *_: None)
    return corpus, src, out, cfg


def test_standardized_export_keeps_the_encoder_and_maps_each_window_affinely(standardized, clip_paths):
    corpus, src, out, cfg = standardized
    norm = cfg["embedding_norm"]
    assert norm["type"] == "standardize" and norm["clips"] == 8 and norm["split"] == "train"
    assert norm["manifest_sha256"] == json.loads((corpus / "recipe.json").read_text())["manifest_sha256"]
    a, b = load_file(src / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(b) - set(a) == {"embed_norm.mean", "embed_norm.std"}
    assert all(np.array_equal(a[k], b[k]) for k in a)  # the encoder and frontend are untouched
    # the statistics are those of the training clips' pooled embeddings
    raw = pooled_embeddings(load_module(src), fit_waves(corpus, 8, 16000))
    np.testing.assert_allclose(b["embed_norm.mean"], raw.mean(axis=0), rtol=1e-4, atol=1e-5)
    sd = raw.std(axis=0)
    np.testing.assert_allclose(b["embed_norm.std"], np.maximum(sd, REL_FLOOR * np.median(sd)), rtol=1e-4, atol=1e-6)
    # ONNX, through the runtime's windows: a 25 s input is three windows, and an affine map per window
    # commutes with their duration-weighted mean
    long = np.tile(load_audio(clip_paths[0], 16000), 10)[: 25 * 16000]
    e_src = load(src).encode(long, sample_rate=16000, normalize=False)
    e_out = load(out).encode(long, sample_rate=16000, normalize=False)
    np.testing.assert_allclose(e_out, (e_src - b["embed_norm.mean"]) / b["embed_norm.std"], rtol=1e-3, atol=1e-3)
    assert cfg["onnx"]["embedding_max_abs_diff_vs_torch"] <= 1e-4
    note = cfg["training"]["after_training"][-1]
    assert "--standardize 8 --corpus" in note and note in (out / "README.md").read_text()
    assert "standardised per dimension with the mean and std of the pooled embeddings of 8" in (
        out / "README.md").read_text()


def test_random_init_baseline_is_standardised_on_the_same_clips(standardized, tmp_path):
    corpus, _, out, cfg = standardized
    assert {"byol-tiny.debian@random-init", "logmel-stats"} <= set(cfg["metrics"]["results"])
    with pytest.raises(AudioembError, match="fitted on the corpus"):
        random_init_model(out, 0)
    rnd = random_init_model(out, 0, corpora=(tmp_path, corpus))  # the corpus with the recorded manifest is used
    z = np.concatenate([rnd.backend.run(w[None])[0] for w in fit_waves(corpus, 8, 16000)])
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-3)
    assert z.std(axis=0).max() > 0.5  # scaled, not zeroed
    plain = random_init_model(standardized[1], 0)  # the unstandardised folder's random init: another cache key
    assert plain.cache_key != rnd.cache_key


def test_standardize_refusals_are_one_line(standardized, tmp_path):
    corpus, src, out, _ = standardized
    with pytest.raises(ExportError, match="already standardises"):
        package_standardized(out, tmp_path / "o", corpus, clips=8, evaluate=False, log=lambda *_: None)
    with pytest.raises(ExportError, match="change the readout on the folder it was made from"):
        package_readout(out, tmp_path / "o", "concat", corpus, evaluate=False, log=lambda *_: None)
    r = CliRunner().invoke(app, ["export", "--from", str(src), "--standardize", "8", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--corpus" in r.output and "Traceback" not in r.output
    other = tmp_path / "other"  # another corpus: one training clip fewer
    other.mkdir()
    rows = (corpus / "manifest.jsonl").read_text().splitlines(keepends=True)
    first_train = next(i for i, r in enumerate(rows) if json.loads(r)["split"] == "train")
    (other / "manifest.jsonl").write_text("".join(rows[:first_train] + rows[first_train + 1:]))
    (other / "recipe.json").write_text(json.dumps({"manifest_sha256": "0" * 64}))
    r = CliRunner().invoke(app, ["export", "--from", str(src), "--standardize", "8", "--corpus", str(other), "-o",
                                 str(tmp_path / "o")])
    assert r.exit_code == 2 and "trained on another corpus" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


def test_eval_cli_fits_the_random_init_on_the_corpus_or_says_why_it_skips_it(standardized):
    corpus, _, out, _ = standardized
    task = str(corpus / "tasks" / "toy.csv")
    r = CliRunner().invoke(app, ["eval", task, "--model", str(out), "--seeds", "1", "--no-progress"])
    assert r.exit_code == 0 and "Traceback" not in r.output
    assert "random-init baseline of" in r.output and "fitted on the corpus" in r.output
    assert "@random-init" not in r.output.split("skipped")[-1]  # no random-init row without its statistics
    r = CliRunner().invoke(app, ["eval", task, "--model", str(out), "--seeds", "1", "--no-progress",
                                 "--corpus", str(corpus)])
    assert r.exit_code == 0 and "skipped" not in r.output and "byol-tiny.debian@random-init" in r.output


def _rebuild(corpus, dest):
    """``corpus`` as another machine rebuilds it: the same training files and audio, a manifest that differs in
    a held-out row's duration, so its sha256 differs (docs/corpus.md)."""
    dest.mkdir()
    (dest / "audio").symlink_to(corpus / "audio")
    rows = [json.loads(r) for r in (corpus / "manifest.jsonl").read_text().splitlines()]
    held = next(r for r in rows if r["split"] != "train")
    held["duration_s"] = round(held["duration_s"] + 1e-4, 4)
    (dest / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (dest / "recipe.json").write_text(json.dumps({"manifest_sha256": "1" * 64}))
    return dest


def test_a_rebuilt_corpus_with_the_same_training_files_is_the_same_corpus(standardized, tmp_path):
    """Regression: a corpus rebuilt on another machine (same training file list, another manifest sha256) was
    refused, both for standardising a model trained on it and for refitting the random-init baseline of one
    standardised before, so a shipped standardised model could not be scored again on any rebuild."""
    corpus, src, out, cfg = standardized
    rebuilt = _rebuild(corpus, tmp_path / "rebuilt")
    assert cfg["embedding_norm"]["file_list_sha256"] == cfg["training"]["data"]["file_list_sha256"]
    rnd = random_init_model(out, 0, corpora=(rebuilt,))
    z = np.concatenate([rnd.backend.run(w[None])[0] for w in fit_waves(rebuilt, 8, 16000)])
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-3)
    # a record from before the file list was kept: the model's own training file list stands in
    old = tmp_path / "old"
    shutil.copytree(out, old)
    c = json.loads((old / "config.json").read_text())
    c["embedding_norm"].pop("file_list_sha256")
    write_config(old, c)
    assert random_init_model(old, 0, corpora=(rebuilt,)).cache_key
    again = package_standardized(src, tmp_path / "again", rebuilt, clips=8, evaluate=False, log=lambda *_: None)
    assert again["embedding_norm"]["manifest_sha256"] == "1" * 64


def test_a_folder_of_audio_fits_the_standardiser_and_its_random_init(standardized, tmp_path, clip_paths):
    """`--standardize N --corpus FOLDER` with a plain folder of audio (a model trained with --data, or the
    collection to be searched): fitted on N of its files, recorded by the folder's file list, refitted for the
    random-init baseline only from that folder as it was, and no corpus figures."""
    src = standardized[1]
    folder = tmp_path / "my_sounds"
    (folder / "sub").mkdir(parents=True)
    for i, p in enumerate(clip_paths):
        shutil.copy(p, (folder / "sub" if i % 2 else folder) / p.name)
    out = tmp_path / "std-folder"
    cfg = package_standardized(src, out, folder, clips=6, log=lambda *_: None)
    norm = cfg["embedding_norm"]
    assert norm["folder"] == "my_sounds" and norm["clips"] == 6 and "manifest_sha256" not in norm
    assert "results" not in cfg["metrics"]
    assert "6 audio files of the folder `my_sounds`" in (out / "README.md").read_text()
    raw = pooled_embeddings(load_module(src), fit_waves(folder, 6, 16000))
    np.testing.assert_allclose(load_file(out / "model.safetensors")["embed_norm.mean"], raw.mean(axis=0),
                               rtol=1e-4, atol=1e-5)

    with pytest.raises(AudioembError, match="fitted on the folder `my_sounds`"):
        random_init_model(out, 0, corpora=(tmp_path / "nothing",))
    rnd = random_init_model(out, 0, corpora=(tmp_path / "nothing", folder))
    z = np.concatenate([rnd.backend.run(w[None])[0] for w in fit_waves(folder, 6, 16000)])
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-3)
    task = str(standardized[0] / "tasks" / "toy.csv")
    r = CliRunner().invoke(app, ["eval", task, "-m", str(out), "--seeds", "1", "--no-progress",
                                 "--corpus", str(folder)])
    assert r.exit_code == 0 and "skipped" not in r.output and "@random-init" in r.output, r.output
    shutil.copy(clip_paths[0], folder / "added.wav")  # the folder changed: not the clips it was fitted on
    with pytest.raises(AudioembError, match="not given as it was"):
        random_init_model(out, 0, corpora=(folder,))

    r = CliRunner().invoke(app, ["export", "--from", str(src), "--standardize", "4", "--corpus",
                                 str(folder), "-o", str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["embedding_norm"]["clips"] == 4
