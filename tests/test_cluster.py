"""``audioemb.cluster``: k-means with k by silhouette, local aggregation, scores, and ``audioemb cluster``."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from audioemb.cli import app
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from typer.testing import CliRunner

from audioemb.cluster import (
    calinski_harabasz,
    choose_k,
    cluster_scores,
    davies_bouldin,
    default_k_range,
    kmeans,
    la_loss_grad,
    local_aggregation,
    silhouette,
)
from audioemb.cluster_report import cluster_name, cluster_names, read_collection
from audioemb.embed import embed_folder
from audioemb.index import Index

runner = CliRunner()
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def blobs(n_per: int = 100, k: int = 5, dim: int = 32, spread: float = 0.15, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(k), n_per)
    x = centres[y] + spread * rng.standard_normal((len(y), dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def test_kmeans_picks_k_by_silhouette_and_recovers_blobs():
    x, y = blobs()
    res = kmeans(x)
    assert res.k == 5 and cluster_scores(y, res.labels)["nmi"] > 0.9
    assert res.centroids.shape == (5, 32) and np.allclose(np.linalg.norm(res.centroids, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(res.distances, 1 - np.sum(x * res.centroids[res.labels], axis=1), atol=1e-5)
    by_k = res.info["scores_by_k"]
    assert max(by_k, key=lambda k: by_k[k]["silhouette"]) == 5 and res.info["k_range"] == [10, 50]
    assert res.info["criterion"] == "silhouette"  # 5 is below the floor of 10 but clearly separated: kept
    assert kmeans(x, k=3).k == 3 and len(np.unique(kmeans(x, k=3).labels)) == 3


def test_kmeans_reads_a_memory_map_in_chunks_with_the_same_result(tmp_path, monkeypatch):
    import audioemb.cluster as cl
    from audioemb._vectors import RowView

    x, _ = blobs(n_per=300, k=5)
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    ref = kmeans(x, 5, seed=1)
    monkeypatch.setattr(cl, "ASSIGN_CHUNK", 128)  # 12 chunks
    for lazy in (mm, RowView(mm, np.arange(len(x)))):
        res = kmeans(lazy, 5, seed=1)
        assert np.array_equal(res.labels, ref.labels) and np.allclose(res.distances, ref.distances, atol=1e-6)
        assert res.embeddings is None and res.silhouette == pytest.approx(ref.silhouette, abs=1e-6)
    # above 256 points per centroid k-means trains on a sample; every point is still assigned to its nearest
    monkeypatch.setattr(cl, "TRAIN_POINTS_PER_CENTROID", 40)
    res = kmeans(mm, 5, seed=1)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = xn @ res.centroids.T
    assert np.array_equal(res.labels, sims.argmax(axis=1)) and cluster_scores(ref.labels, res.labels)["ari"] > 0.95
    assert np.allclose(res.distances, 1 - sims.max(axis=1), atol=1e-5)


def test_local_aggregation_of_a_memory_map_matches_the_array(tmp_path, monkeypatch):
    import audioemb.cluster as cl

    x, _ = blobs(n_per=60, k=4, spread=0.3)
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    monkeypatch.setattr(cl, "ASSIGN_CHUNK", 50)  # projected to the temporary file in 5 chunks
    ref = local_aggregation(x, 4, epochs=2)
    res = local_aggregation(np.load(tmp_path / "x.npy", mmap_mode="r"), 4, epochs=2)
    assert res.embeddings is None and res.info["loss_by_epoch"] == pytest.approx(ref.info["loss_by_epoch"], abs=1e-4)
    assert cluster_scores(ref.labels, res.labels)["ari"] > 0.99 and np.allclose(res.centroids, ref.centroids, atol=1e-4)


def test_criteria_match_sklearn():
    x, _ = blobs(40, 4, 16, 0.4, seed=3)
    labels = kmeans(x, 4).labels
    assert silhouette(x, labels) == pytest.approx(silhouette_score(x, labels, metric="cosine"), abs=1e-6)
    assert calinski_harabasz(x, labels) == pytest.approx(calinski_harabasz_score(x, labels), rel=1e-6)
    assert davies_bouldin(x, labels) == pytest.approx(davies_bouldin_score(x, labels), rel=1e-6)
    for f in (silhouette, calinski_harabasz, davies_bouldin):
        assert f(x, np.zeros(len(x))) is None


def test_automatic_k_floor_and_criteria():
    assert default_k_range(104) == (7, 50) and default_k_range(100000) == (10, 50) and default_k_range(5) == (2, 4)
    # silhouette prefers a weak 2-way split; the floor keeps the best k at or above it
    weak = {2: {"silhouette": 0.45}, 7: {"silhouette": 0.25}, 8: {"silhouette": 0.30}, 9: {"silhouette": 0.2}}
    assert choose_k(weak, "silhouette", floor=7) == 8
    # a clearly separated k below the floor wins (silhouette >= 0.5 and 0.1 above the best above the floor)
    strong = {3: {"silhouette": 0.8}, 7: {"silhouette": 0.5}, 8: {"silhouette": 0.55}}
    assert choose_k(strong, "silhouette", floor=7) == 3
    near = {5: {"silhouette": 0.76}, 7: {"silhouette": 0.73}}
    assert choose_k(near, "silhouette", floor=7) == 7
    db = {7: {"silhouette": 0.3, "davies-bouldin": 1.2}, 9: {"silhouette": 0.2, "davies-bouldin": 0.9}}
    assert choose_k(db, "davies-bouldin", floor=7) == 9 and choose_k(db, "silhouette", floor=7) == 7
    with pytest.raises(ValueError, match="criterion"):
        kmeans(blobs(10, 3)[0], criterion="elbow")


def test_eight_groups_found_where_silhouette_alone_picks_fewer():
    # 8 groups of 13 as two well-separated families of 4 close groups: unconstrained silhouette picks 2
    rng = np.random.default_rng(4)
    fam = rng.standard_normal((2, 48)) * 3
    centres = np.concatenate([fam[i] + rng.standard_normal((4, 48)) for i in range(2)])
    y = np.repeat(np.arange(8), 13)
    x = centres[y] + 0.4 * rng.standard_normal((len(y), 48))
    free = kmeans(x, k_range=(2, 50))  # no floor: silhouette's best k overall
    auto = kmeans(x)
    assert free.k == 2 and auto.k == 8
    assert cluster_scores(y, free.labels)["nmi"] == pytest.approx(0.5, abs=0.01)
    assert cluster_scores(y, auto.labels)["nmi"] > 0.95


def test_cluster_names_from_exemplar_file_names():
    assert cluster_name(["dogs/bark_01.wav", "dogs/bark_07.wav", "dogs/growl_2.wav"]) == "dogs bark"
    assert cluster_name(["a/x1.wav"]) == "x1"
    assert cluster_name(["Piano/C4.flac", "Violin/A4.flac"]) == "C4"  # nothing shared: the nearest one's name
    ex = [{"cluster": 0, "exemplars": [{"path": "bell_1.wav"}, {"path": "bell_2.wav"}]},
          {"cluster": 1, "exemplars": [{"path": "bell_3.wav"}, {"path": "bell_4.wav"}]},
          {"cluster": 2, "exemplars": [{"path": "speech/hello_en.ogg"}, {"path": "speech/bye_en.ogg"}]}]
    assert cluster_names(ex) == ["bell #0", "bell #1", "speech en"]


def test_local_aggregation_clusters_blobs():
    x, y = blobs()
    res = local_aggregation(x, seed=1)
    assert res.k == 5 and cluster_scores(y, res.labels)["nmi"] > 0.8  # chance level is ~0
    assert res.embeddings.shape == (len(x), min(64, x.shape[1])) and len(res.info["loss_by_epoch"]) == 6
    x2, y2 = blobs(150, 6, 48, 0.45, seed=2)  # overlapping blobs: still far above chance
    assert cluster_scores(y2, local_aggregation(x2, k=6).labels)["nmi"] > 0.5


def test_local_aggregation_gradient_is_exact():
    rng = np.random.default_rng(0)
    w, x = rng.standard_normal((8, 4)), rng.standard_normal((5, 8))
    mb = rng.standard_normal((5, 6, 4))
    mb /= np.linalg.norm(mb, axis=2, keepdims=True)
    valid = np.ones((5, 6), bool)
    valid[0, -1] = False
    close = rng.random((5, 6)) < 0.4
    close[:, 0] = True
    _, grad, _ = la_loss_grad(w, x, mb, valid, close, 0.5)
    num, eps = np.zeros_like(w), 1e-6
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            d = np.zeros_like(w)
            d[i, j] = eps
            num[i, j] = (la_loss_grad(w + d, x, mb, valid, close, 0.5)[0]
                         - la_loss_grad(w - d, x, mb, valid, close, 0.5)[0]) / (2 * eps)
    np.testing.assert_allclose(grad, num, atol=1e-7)


def test_cluster_scores_exact_values():
    assert cluster_scores([0, 0, 1, 1, 2], [0, 0, 1, 1, 2]) == {"nmi": 1.0, "ari": 1.0, "purity": 1.0}
    assert cluster_scores(["a", "a", "b", "b"], [7, 7, 3, 3]) == {"nmi": 1.0, "ari": 1.0, "purity": 1.0}
    s = cluster_scores([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1])
    assert s["purity"] == pytest.approx(5 / 6)  # cluster 0: 2 of label 0; cluster 1: 3 of label 1 out of 4
    # ARI: sum C(n_ij,2) = 1 + 0 + 3 = 4; rows 1 + 6 = 7; columns 3 + 3 = 6; expected 7 * 6 / 15
    assert s["ari"] == pytest.approx((4 - 2.8) / ((7 + 6) / 2 - 2.8))
    mi = (2 / 6) * math.log(2) + (1 / 6) * math.log(0.5) + (3 / 6) * math.log(1.5)
    h_true, h_pred = math.log(2), -(2 / 6 * math.log(2 / 6) + 4 / 6 * math.log(4 / 6))
    assert s["nmi"] == pytest.approx(mi / ((h_true + h_pred) / 2))
    assert cluster_scores([0, 1, 0, 1], [0, 0, 0, 0])["purity"] == 0.5


def test_tiny_inputs_do_not_crash():
    x, _ = blobs(1, 2, 8)
    assert kmeans(x).k == 1 and local_aggregation(x).k == 1
    assert kmeans(x, k=10).k == 2  # k is capped at N


@pytest.fixture()
def embedded(tmp_path, clip_paths, tiny_model):
    d = tmp_path / "clips"
    d.mkdir()
    for p in clip_paths:
        shutil.copy(p, d / p.name)
    out = tmp_path / "emb"
    embed_folder(d, out, str(tiny_model), progress=False)
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for p in clip_paths:
            w.writerow([p.name, p.name.split("_")[0]])
    return d, out, labels


def test_cli_cluster_embed_output(embedded, tmp_path, clip_paths):
    _, emb, labels = embedded
    out = tmp_path / "clusters"
    r = runner.invoke(app, ["cluster", str(emb), "-o", str(out), "--method", "local-aggregation", "-k", "3",
                            "--eval", str(labels)])
    assert r.exit_code == 0, r.output
    assert "k=3" in r.output and "NMI" in r.output and "purity" in r.output
    with open(out / "assignments.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "cluster", "distance"]
    assert sorted(r["path"] for r in rows) == sorted(p.name for p in clip_paths)
    assert {int(r["cluster"]) for r in rows} <= {0, 1, 2} and all(float(r["distance"]) >= -1e-6 for r in rows)
    ex = json.loads((out / "exemplars.json").read_text())
    assert [c["cluster"] for c in ex] == [0, 1, 2] and sum(c["size"] for c in ex) == len(clip_paths)
    for c in ex:  # exemplars are the members nearest the centre, nearest first
        dists = sorted(float(r["distance"]) for r in rows if int(r["cluster"]) == c["cluster"])
        assert [e["distance"] for e in c["exemplars"]] == pytest.approx(dists[:5], abs=1e-6)
    s = json.loads((out / "summary.json").read_text())
    assert s["k"] == 3 and s["n"] == len(clip_paths) and set(s["scores"]) == {"local-aggregation", "kmeans"}
    for sc in s["scores"].values():
        assert 0 <= sc["nmi"] <= 1 and 1 / 3 <= sc["purity"] <= 1
    if HAS_MATPLOTLIB:  # the plain install writes everything else and says how to get the PNG
        assert (out / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(c["name"] for c in ex) and s["names"] == [c["name"] for c in ex]
    mp = json.loads((out / "map.json").read_text())
    assert len(mp["x"]) == len(clip_paths) and sorted(set(mp["cluster"])) == [0, 1, 2]
    page = (out / "map.html").read_text()
    assert "AudioembMap.draw" in page and '"paths"' in page and "http" not in page.split("<script>")[1]


def test_embed_output_is_read_through_memory_maps_in_chunks(embedded, tiny_model, monkeypatch):
    """Regression: ``cluster`` on an embed output stacked every row in memory, then copied it again. The rows
    and paths now stream into temporary files read through memory maps, with the same values and order."""
    import gc

    import audioemb.collection as collection
    from audioemb.embed import read_embeddings

    clips, emb, _ = embedded
    (clips / "broken.wav").write_bytes(b"RIFF not audio")
    embed_folder(clips, emb, str(tiny_model), progress=False)  # a failed file: a record without a row
    monkeypatch.setattr(collection, "COPY_CHUNK", 3)  # several writes
    col = read_collection(emb)
    x, records = read_embeddings(emb)
    rows = [r for r in records if r.get("row") is not None]
    assert len(rows) < len(records) and col.kind == "embed"
    assert isinstance(col.vectors, np.memmap)
    np.testing.assert_array_equal(np.asarray(col.vectors), x[[r["row"] for r in rows]])
    assert [it["path"] for it in col.items] == [r["path"] for r in rows]
    assert col.items[-1] == col.items[len(rows) - 1] and col.items[1:3] == [{"path": r["path"]} for r in rows[1:3]]
    with pytest.raises(IndexError):
        col.items[len(rows)]
    folder = Path(col.vectors.filename).parent  # the temporary copy goes with the collection
    assert folder.is_dir()
    del col
    gc.collect()
    assert not folder.exists()


def test_cluster_index_with_segments(embedded, tmp_path, tiny_model):
    clips, _, _ = embedded
    idx = Index.build(clips, tmp_path / "idx", model=str(tiny_model), segments=1.0)
    col = read_collection(tmp_path / "idx")
    assert col.kind == "index" and len(col.vectors) == len(idx) > len(list(clips.iterdir()))
    out = tmp_path / "clusters"
    r = runner.invoke(app, ["cluster", str(tmp_path / "idx"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    with open(out / "assignments.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "start", "end", "cluster", "distance"] and len(rows) == len(idx)
    assert (out / "map.png").stat().st_size > 1000 if HAS_MATPLOTLIB else not (out / "map.png").exists()
    r = runner.invoke(app, ["cluster", str(clips), "-o", str(out)])
    assert r.exit_code == 2 and "a folder of audio files, not yet embedded" in r.output


def test_cli_cluster_json_and_no_matplotlib(embedded, tmp_path, monkeypatch):
    import builtins

    _, emb, _ = embedded
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    out = tmp_path / "plain"
    r = runner.invoke(app, ["cluster", str(emb), "-o", str(out), "-k", "2", "--json", "--root", str(embedded[0])])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["k"] == 2 and s["map_png"] is None and "audioemb[plot]" in s["outputs_missing"]["map.png"]
    assert not (out / "map.png").exists() and (out / "map.html").exists()
    assert json.loads((out / "map.json").read_text())["root"] == str(embedded[0].resolve())
    r = runner.invoke(app, ["cluster", str(emb), "-o", str(out), "--no-progress"])
    assert r.exit_code == 0 and "no map.png: matplotlib is not installed; pip install 'audioemb[plot]'" in r.output


def test_more_clusters_than_items_says_so(embedded, tmp_path):
    _, emb, _ = embedded
    r = runner.invoke(app, ["cluster", str(emb), "-o", str(tmp_path / "c"), "-k", "1000", "--no-progress"])
    s = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert r.exit_code == 0 and s["k_asked"] == 1000 and s["k"] == s["n"] < 1000, r.output
    assert f"note: -k 1000 is more than the {s['n']} items; clustered with k={s['n']}" in r.output
    runner.invoke(app, ["cluster", str(emb), "-o", str(tmp_path / "d"), "-k", "2", "--no-progress"])
    assert "k_asked" not in json.loads((tmp_path / "d" / "summary.json").read_text())


def _copies(n_distinct: int = 9, copies: int = 40) -> np.ndarray:
    """Float32 unit vectors, each repeated: a collection holding copies of the same files."""
    base = np.random.default_rng(0).normal(size=(n_distinct, 192)).astype(np.float32)
    return np.repeat(base / np.linalg.norm(base, axis=1, keepdims=True), copies, axis=0)


def test_silhouette_of_duplicates_split_between_clusters_is_sklearns():
    """Regression: copies of a file split between two clusters (both distances 0) scored 1790 through
    rounding, so automatic k chose a k that splits copies (silhouette is at most 1)."""
    x = _copies()
    labels = np.repeat(np.arange(18), 20)
    assert silhouette(x, labels) == pytest.approx(silhouette_score(x, labels, metric="cosine"), abs=1e-9)
    assert -1.0 <= silhouette(x, np.repeat(np.arange(9), 40)) <= 1.0


def test_automatic_k_never_exceeds_the_distinct_vectors():
    """Regression: 9 different sounds, 40 copies each: automatic k was 10 with one empty cluster."""
    res = kmeans(_copies())
    assert res.k == 9 and sorted(np.bincount(res.labels)) == [40] * 9
    assert (res.distances >= 0).all()  # copies of a centroid: 0, never -0.000000 in assignments.csv
    assert all(-1.0 <= d["silhouette"] <= 1.0 for d in res.info["scores_by_k"].values())


def test_eval_without_the_extra_stops_before_any_work(embedded, tmp_path, monkeypatch):
    """Regression: without sklearn, `cluster --eval` clustered, wrote part of its output, then failed."""
    import importlib.util

    _, emb, _ = embedded
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    (tmp_path / "labels.csv").write_text("path,label\n")
    r = runner.invoke(app, ["cluster", str(emb), "-o", str(tmp_path / "c"), "--eval", str(tmp_path / "labels.csv"),
                            "--no-progress"])
    assert r.exit_code == 2 and "pip install 'audioemb[eval]'" in r.output and not (tmp_path / "c").exists()
