"""Evaluation metrics on hand-checkable inputs, and the eval CLI on a labelled folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from audioemb.eval.metrics import knn_precision, linear_probe, retrieval_map


def test_knn_precision_and_map_by_hand():
    # two tight pairs far apart: every item's nearest other item shares its label
    x = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    y = np.array(["a", "a", "b", "b"])
    assert knn_precision(x, y, k=1) == 1.0
    assert knn_precision(x, y, k=3) == pytest.approx(1 / 3)  # 1 of the 3 others shares the label
    assert retrieval_map(x, y) == 1.0
    # swap labels so each item's nearest neighbour is the wrong class: relevant item ranked 2nd of 3
    y2 = np.array(["a", "b", "a", "b"])
    assert knn_precision(x, y2, k=1) == 0.0
    # ranks of the one relevant item per query: a0 -> 2nd or 3rd; compute AP exactly
    sims = x @ x.T / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(x, axis=1))
    aps = []
    for i in range(4):
        order = [j for j in np.argsort(-sims[i]) if j != i]
        rank = next(r for r, j in enumerate(order, 1) if y2[j] == y2[i])
        aps.append(1 / rank)
    assert retrieval_map(x, y2) == pytest.approx(np.mean(aps))


def test_groups_exclude_same_group_neighbours():
    x = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    y = np.array(["a", "a", "b", "b"])
    groups = np.array([0, 0, 1, 1])  # each pair is one group: its same-label neighbour is excluded
    assert knn_precision(x, y, groups, k=1) == 0.0


def test_linear_probe_separable_and_grouped():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    x = np.eye(4)[y] * 3 + rng.standard_normal((120, 4)) * 0.3
    acc, std = linear_probe(x, y)
    assert acc > 0.97 and std < 0.05
    noise = rng.standard_normal((120, 8))
    assert linear_probe(noise, y)[0] < 0.5
    groups = np.tile(np.arange(10), 12)
    assert linear_probe(x, y, groups)[0] > 0.95


def test_eval_cli_on_class_folders(tmp_path, tiny_model, clip_paths):
    from audioemb.cli import app
    from typer.testing import CliRunner

    for i, p in enumerate(clip_paths):
        d = tmp_path / "data" / ("speech" if "speech" in p.name else "other")
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, d / p.name)
        shutil.copy(p, d / f"copy{i}{p.suffix}")
    out = tmp_path / "scores.json"
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "data"), "--model", str(tiny_model), "--no-baselines",
                                 "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "linear probe accuracy" in r.output and "tiny-ntt.test" in r.output
    res = json.loads(out.read_text())
    assert res["tasks"]["data"]["classes"] == 2
    scores = res["results"]["tiny-ntt.test"]["data"]
    assert all(0.0 <= scores[m] <= 1.0 for m in ("probe_acc", "knn_p10", "map"))
    assert scores["map"] > 0.5  # each clip's exact copy ranks first, above the chance level of two classes
    # regression: --layer 0 was scored under the model's plain name; --json into a missing folder lost the run
    deep = tmp_path / "new" / "folder" / "l0.json"
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "data"), "--model", str(tiny_model), "--no-baselines",
                                 "--layer", "0", "--json", str(deep)])
    assert r.exit_code == 0, r.output
    assert list(json.loads(deep.read_text())["results"]) == ["tiny-ntt.test@layer0"]
    import soundfile as sf  # regression: one all-NaN file stopped the whole evaluation

    sf.write(tmp_path / "data" / "speech" / "nan.wav", np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "data"), "--model", str(tiny_model), "--no-baselines"])
    assert r.exit_code == 0 and "skipped " in r.output and "nan.wav: every sample is NaN or Inf" in r.output, r.output


@pytest.mark.parametrize("csv_text, needle", [
    ("path,label\na.wav\n", "line 2: no label"),  # a traceback before
    ("path,label\na.wav,x\na.wav,y\n", r"line 3: a.wav is listed again \(first on line 2\)"),  # inflated kNN
    ("path,label,group\na.wav,x,g1\nb.wav,y,\n", r"line 3: no group \(other rows have one\)"),
    ("path,label\na.wav,x,extra\n", "line 2: more columns than the header"),
])
def test_a_labelled_csv_is_checked_row_by_row(tmp_path, csv_text, needle):
    from audioemb.eval.data import load_labelled

    (tmp_path / "set.csv").write_text(csv_text)
    with pytest.raises(ValueError, match=needle):
        load_labelled(tmp_path / "set.csv")


def test_a_labelled_csv_from_a_spreadsheet_is_read(tmp_path):
    """UTF-8 with a BOM (as spreadsheets save it) and spaces after the commas were "needs a header with 'path'
    and 'label' columns"; Latin-1 was a decoding error that named no file."""
    from audioemb.eval.data import check_classes, load_labelled

    (tmp_path / "set.csv").write_bytes("\ufeffpath, label\na.wav,x\nb.wav,y\nc.wav,y\n".encode())
    ds = load_labelled(tmp_path / "set.csv")
    assert [p.name for p in ds.paths] == ["a.wav", "b.wav", "c.wav"] and ds.labels.tolist() == ["x", "y", "y"]
    with pytest.raises(ValueError, match="class 'x' of set has 1 readable clip"):
        check_classes(ds, tmp_path / "set.csv")
    (tmp_path / "nogroups.csv").write_text("path,label,group\na.wav,x,\nb.wav,y,\n")  # an empty column: no groups
    assert load_labelled(tmp_path / "nogroups.csv").groups is None
    (tmp_path / "latin.csv").write_bytes("path,label\ncaf\xe9.wav,x\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv: not UTF-8 text"):
        load_labelled(tmp_path / "latin.csv")


def test_prototype_accuracy_by_hand():
    from audioemb.eval.metrics import prototype_accuracy

    x = np.array([[2.0, 0.0], [0.0, 2.0], [1.8, 0.5], [0.3, 1.5], [1.0, 1.1]])
    y = np.array(["a", "b", "a", "b", "a"])
    # support 0 (a) and 1 (b): centred on their mean (1, 1), the prototypes are (1, -1) and (-1, 1) / sqrt 2.
    # queries centred: (0.8, -0.5) -> a (right), (-0.7, 0.5) -> b (right), (0, 0.1) -> b (wrong): 2 of 3
    assert prototype_accuracy(x, y, np.array([0, 1]), np.array([2, 3, 4])) == pytest.approx(2 / 3)


def test_few_shot_split_keeps_groups_apart():
    from audioemb.eval.metrics import few_shot_split

    rng = np.random.default_rng(0)
    # crossed groups (every speaker says every phrase) and nested groups (each program in one family)
    crossed_y, crossed_g = np.repeat(np.arange(6), 12), np.tile(np.arange(12), 6)
    nested_y, nested_g = np.repeat(np.arange(4), 30), np.repeat(np.arange(12), 10)
    for y, g in ((crossed_y, crossed_g), (nested_y, nested_g)):
        for _ in range(10):
            s, q = few_shot_split(y, g, 5, rng)
            assert not set(g[s]) & set(g[q])
            assert all((y[s] == c).sum() <= 5 for c in np.unique(y))
            assert set(y[q]) <= set(y[s]) and len(set(y[q])) == len(np.unique(y))
    s, q = few_shot_split(crossed_y, crossed_g, 5, rng)
    assert len(set(crossed_g[s])) == 5  # examples share groups across classes, so 7 phrases stay for queries
    s, q = few_shot_split(np.repeat([0, 1], 3), None, 5, rng)
    assert len(s) == 4 and len(q) == 2  # without groups each class keeps one query


def test_few_shot_probe_separable_vs_random():
    from audioemb.eval.metrics import few_shot_probe

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 20)
    groups = np.tile(np.arange(20), 10)
    centres = rng.standard_normal((10, 32)) * 3
    sep = centres[y] + rng.standard_normal((200, 32))
    acc, std = few_shot_probe(sep, y, groups)
    assert acc > 0.95 and std < 0.05
    noise = rng.standard_normal((200, 32))
    acc_r, _ = few_shot_probe(noise, y, groups)
    assert 0.0 < acc_r < 0.2  # chance is 0.1


def test_random_init_seeds_are_merged_into_mean_and_std():
    from audioemb.eval.run import SEED_SEP, format_table, merge_seeds

    res = {"m": {"t": {"probe_acc": 0.9, "knn_p10": 0.5}},
           f"m@random-init{SEED_SEP}0": {"t": {"probe_acc": 0.6, "knn_p10": 0.3}},
           f"m@random-init{SEED_SEP}1": {"t": {"probe_acc": 0.8, "knn_p10": 0.3}}}
    merged = merge_seeds(res)
    assert list(merged) == ["m", "m@random-init"]
    r = merged["m@random-init"]["t"]
    assert r["probe_acc"] == pytest.approx(0.7) and r["seed_std"]["probe_acc"] == pytest.approx(0.1)
    assert r["seeds"] == 2 and r["seed_values"]["probe_acc"] == [0.6, 0.8]
    table = format_table({"tasks": {"t": {}}, "results": merged})
    assert "| m@random-init | 0.700 ± 0.100 | 0.700 |" in table


def test_evaluate_reports_progress_and_chunks_change_nothing():
    from audioemb.eval.data import LabelledSet
    from audioemb.eval.run import evaluate

    rng = np.random.default_rng(0)
    vecs = {f"f{i}.wav": rng.standard_normal(8).astype(np.float32) + (i % 2) * 3 for i in range(40)}

    class Table:  # a "model" whose embedding of a path is a fixed vector
        name = "table"

        def encode(self, paths, batch_size=32):
            return np.stack([vecs[p] for p in paths])

    ds = LabelledSet("toy", list(vecs), np.array([i % 2 for i in range(40)]), None)
    seen = []
    res = evaluate([Table()], [ds], log=lambda *_: None, progress=lambda what, done, total: seen.append(
        (what, done, total)))
    whole = evaluate([Table()], [ds], log=lambda *_: None)
    assert seen[-1] == ("[1/1] table on toy", 40, 40)
    assert res["results"] == whole["results"]
    from audioemb.eval.run import embed_and_score

    steps = []
    chunked = embed_and_score(Table(), ds, on_files=lambda d, t: steps.append(d), chunk=16)
    assert steps == [16, 32, 40] and chunked == whole["results"]["table"]["toy"]


def test_evaluate_refuses_two_models_of_one_name():
    """Two models of one name would overwrite each other's row (and their random-init seeds would merge)."""
    from audioemb.eval.data import LabelledSet
    from audioemb.eval.run import distinct_name, evaluate

    class Zeros:
        name = "same"

        def encode(self, paths, batch_size=32):
            return np.zeros((len(paths), 4), np.float32)

    ds = LabelledSet("toy", ["a", "b"], np.array([0, 1]), None)
    with pytest.raises(ValueError, match="two models are named 'same'"):
        evaluate([Zeros(), Zeros()], [ds], log=lambda *_: None)
    assert distinct_name("m", "x", []) == "m"
    assert distinct_name("m", "/e/m2", ["m"]) == "m (/e/m2)"
    assert distinct_name("m", "/e/m2", ["m", "m (/e/m2)"]) == "m (/e/m2, 2)"


def test_cache_keeps_each_layer_of_one_model_apart(tmp_path):
    """Regression: keys were cut to 24 characters, so "<key>@layer0" read the last layer's cached scores."""
    from audioemb.eval.data import LabelledSet
    from audioemb.eval.run import EvalCache, LayerView, embed_and_score

    rng = np.random.default_rng(0)
    paths = [f"f{i}.wav" for i in range(40)]
    y = np.array([i % 2 for i in range(40)])
    good = {p: rng.standard_normal(8).astype(np.float32) + (i % 2) * 3 for i, p in enumerate(paths)}
    noise = {p: rng.standard_normal(8).astype(np.float32) for p in paths}

    class Layered:  # layer 0 separates the classes; the last layer is noise
        name, n_layers, config = "layered", 2, {}
        cache_key = "model-" + "ab" * 32

        def encode(self, paths, batch_size=32, layer=None):
            return np.stack([(good if layer == 0 else noise)[p] for p in paths])

    ds = LabelledSet("toy", paths, y, None)
    cache = EvalCache(tmp_path)
    last = embed_and_score(Layered(), ds, cache=cache)
    first = embed_and_score(Layered(), ds, layer=0, cache=cache)
    assert first["probe_acc"] == 1.0 and last["probe_acc"] < 0.9
    assert embed_and_score(LayerView(Layered(), 0), ds, cache=cache) == first
    assert embed_and_score(Layered(), ds, cache=cache) == last  # the plain key still reads its own entry


def test_layer_views_of_random_seeds_merge_per_layer():
    """Regression: ``--layer all`` named a seed's layer ``m@random-init#seed0@layer0``, so merging the seeds
    pooled every layer into one ``m@random-init`` row. Each layer now keeps its own row, averaged over seeds."""
    from audioemb.eval.data import LabelledSet
    from audioemb.eval.run import SEED_SEP, evaluate, layer_views

    rng = np.random.default_rng(0)
    paths = [f"f{i}.wav" for i in range(40)]
    y = np.array([i % 2 for i in range(40)])
    good = {p: rng.standard_normal(8).astype(np.float32) + (i % 2) * 3 for i, p in enumerate(paths)}

    class Seed:  # layer 0 separates the classes; layer 1 is this seed's noise
        n_layers, config = 2, {}

        def __init__(self, s):
            self.name = f"m@random-init{SEED_SEP}{s}"
            self.noise = np.random.default_rng(s + 1).standard_normal((40, 8)).astype(np.float32)

        def encode(self, ps, batch_size=32, layer=None):
            rows = {p: self.noise[i] for i, p in enumerate(paths)}
            if layer == "mean":
                return np.stack([(good[p] + rows[p]) / 2 for p in ps])
            return np.stack([(good if layer == 0 else rows)[p] for p in ps])

    views = [v for s in range(3) for v in layer_views(Seed(s))]
    assert [v.name for v in views[:3]] == [f"m@random-init@layer{i}{SEED_SEP}0" for i in (0, 1, "mean")]
    res = evaluate(views, [LabelledSet("toy", paths, y, None)], log=lambda *_: None)["results"]
    assert list(res) == ["m@random-init@layer0", "m@random-init@layer1", "m@random-init@layermean"]
    assert all(r["toy"]["seeds"] == 3 for r in res.values())
    assert res["m@random-init@layer0"]["toy"]["probe_acc"] == 1.0
    assert res["m@random-init@layer1"]["toy"]["probe_acc"] < 0.9
