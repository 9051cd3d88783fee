"""``audioemb.cluster``: k-means with k by silhouette, local aggregation, scores, and ``audioemb cluster``."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
from audioemb.cli import app
from sklearn.metrics import silhouette_score
from typer.testing import CliRunner

from audioemb.cluster import (
    cluster_scores,
    kmeans,
    la_loss_grad,
    local_aggregation,
    read_collection,
    silhouette,
)
from audioemb.embed import embed_folder
from audioemb.index import Index

runner = CliRunner()


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
    assert max(res.info["silhouette_by_k"], key=lambda k: res.info["silhouette_by_k"][k] or -1) == 5
    assert kmeans(x, k=3).k == 3 and len(np.unique(kmeans(x, k=3).labels)) == 3


def test_silhouette_matches_sklearn():
    x, _ = blobs(40, 4, 16, 0.4, seed=3)
    labels = kmeans(x, 4).labels
    assert silhouette(x, labels) == pytest.approx(silhouette_score(x, labels, metric="cosine"), abs=1e-6)
    assert silhouette(x, np.zeros(len(x))) is None


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
    assert (out / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
    assert (out / "map.png").stat().st_size > 1000
    r = runner.invoke(app, ["cluster", str(clips), "-o", str(out)])
    assert r.exit_code == 2 and "neither" in r.output
