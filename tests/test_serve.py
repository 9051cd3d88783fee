"""``audioemb serve``: the JSON API and the page, through FastAPI's test client, on real clips."""

from __future__ import annotations

import io
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from audioemb.cluster_report import cluster_collection
from audioemb.index import Index
from audioemb.serve import create_app, is_loopback
from audioemb.serve.app import STATIC


@pytest.fixture(scope="module")
def collection(tmp_path_factory, clip_paths):
    """The example clips, an AIFF (browsers cannot play it) and a symlink to a file outside, indexed."""
    base = tmp_path_factory.mktemp("serve")
    root = base / "sounds"
    (root / "sub").mkdir(parents=True)
    for p in clip_paths:
        shutil.copy(p, root / ("sub" if "music" in p.name else ".") / p.name)
    t = np.arange(16000 * 2) / 16000
    sf.write(root / "tone_440.aiff", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    outside = base / "secret.wav"
    shutil.copy(clip_paths[0], outside)
    (root / "link_out.wav").symlink_to(outside)
    idx = Index.build(root, base / "idx", model="npc-s.debian")
    return root, base / "idx", idx


@pytest.fixture(scope="module")
def client(collection):
    _, idx_path, idx = collection
    return TestClient(create_app(idx_path, model=idx.model))


def test_page_and_assets_are_offline(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    for name in ("index.html", "app.js", "map.js", "style.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), f"{name} loads something from the network"
        assert "cdn" not in text.lower()
        assert client.get(f"/static/{name}").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/api/search", "/api/search/upload", "/api/audio", "/api/item", "/api/clusters", "/api/map"} <= set(
        schema["paths"])
    assert client.get("/docs").status_code == 404  # swagger-ui would come from a CDN


def test_search_by_file_and_time_range(client, collection):
    root, _, idx = collection
    info = client.get("/api/info").json()
    assert info["n_files"] == len(idx.files) and info["model"] == "npc-s.debian"
    files = client.get("/api/files", params={"q": "music"}).json()
    assert files["total"] == 3 and all("music" in f["path"] for f in files["files"])
    q = "sub/music_piano_c4_fluidr3.wav"
    r = client.get("/api/search", params={"path": q, "k": 5})
    assert r.status_code == 200, r.text
    res = r.json()
    assert len(res["hits"]) == 5 and res["hits"][0]["path"] == q and res["hits"][0]["score"] > 0.999
    assert [h["rank"] for h in res["hits"]] == [1, 2, 3, 4, 5]
    assert res["hits"][0]["score"] >= res["hits"][1]["score"] >= res["hits"][4]["score"]
    direct = idx.search(str(root / q), k=5)
    assert [h["path"] for h in res["hits"]] == [h.path for h in direct]
    h = next(h for h in res["hits"][1:] if h["path"] != "link_out.wav")
    assert h["duration_s"] == pytest.approx(next(f["duration_s"] for f in idx.files if f["path"] == h["path"]))
    svg = client.get(h["thumbnail_url"])
    assert svg.headers["content-type"].startswith("image/svg+xml") and "<polygon" in svg.text
    bad = client.get("/api/thumbnail", params={"path": h["path"], "start": 1.0, "end": 0.5})  # 200 before
    assert bad.status_code == 400 and "end must come after the start" in bad.json()["detail"]
    part = client.get("/api/search", params={"path": q, "start": 0.2, "end": 1.0}).json()
    assert part["query"] == f"{q}@0.2-1" and part["hits"][0]["score"] < 0.9999  # a part is not the whole file
    np.testing.assert_allclose(part["hits"][0]["score"], idx.search((str(root / q), 0.2, 1.0), k=1)[0].score,
                               atol=1e-5)
    bad = client.get("/api/search", params={"path": q, "start": 2, "end": 1})
    assert bad.status_code == 400 and "end must come after the start" in bad.json()["detail"]
    assert str(root) not in bad.text  # no server paths leak
    # regression: huge or infinite times were a 500 with an OverflowError
    for params in ({"end": 1e308}, {"end": "inf"}, {"start": 1e308}, {"start": "nan"}):
        r = client.get("/api/search", params={"path": q, **params})
        assert r.status_code in ((200,) if params == {"end": 1e308} else (400, 422)), (params, r.status_code)


def test_upload_search_and_its_limits(collection):
    _, idx_path, idx = collection
    client = TestClient(create_app(idx_path, model=idx.model, max_upload_mb=0.5))
    buf = io.BytesIO()
    audio, sr = sf.read(collection[0] / "speech_hello_hedgewars.wav")
    sf.write(buf, audio, sr, format="FLAC")
    r = client.post("/api/search/upload", params={"filename": "hello.flac", "k": 3}, content=buf.getvalue())
    assert r.status_code == 200, r.text
    assert r.json()["hits"][0]["path"] == "speech_hello_hedgewars.wav" and r.json()["hits"][0]["score"] > 0.99
    r = client.post("/api/search/upload", params={"filename": "notes.txt"}, content=b"this is not audio " * 100)
    assert r.status_code == 415 and "notes.txt" in r.json()["detail"] and "not audio" in r.json()["detail"]
    r = client.post("/api/search/upload", params={"filename": "big.wav"}, content=b"\0" * (600 * 1024))
    assert r.status_code == 413 and "limited" in r.json()["detail"]
    assert client.post("/api/search/upload", content=b"").status_code == 400
    # regression: a multipart form (curl -F) was "not audio this server can decode (... starts with b'--...')"
    r = client.post("/api/search/upload", files={"file": ("hello.flac", buf.getvalue(), "audio/flac")})
    assert r.status_code == 415 and "curl --data-binary @FILE" in r.json()["detail"]


def test_audio_is_streamed_with_ranges_and_transcoded(client, collection):
    root = collection[0]
    whole = (root / "speech_hello_hedgewars.wav").read_bytes()
    r = client.get("/api/audio", params={"path": "speech_hello_hedgewars.wav"})
    assert r.status_code == 200 and r.content == whole and r.headers["content-type"] == "audio/wav"
    assert r.headers["accept-ranges"] == "bytes"
    r = client.get("/api/audio", params={"path": "speech_hello_hedgewars.wav"}, headers={"Range": "bytes=100-299"})
    assert r.status_code == 206 and r.content == whole[100:300]
    assert r.headers["content-range"] == f"bytes 100-299/{len(whole)}"
    r = client.get("/api/audio", params={"path": "sub/music_tabla_sonicpi.mp3"})
    assert r.headers["content-type"] == "audio/mpeg"
    r = client.get("/api/audio", params={"path": "tone_440.aiff"})  # browsers do not play AIFF: FLAC instead
    assert r.status_code == 200 and r.headers["content-type"] == "audio/flac"
    got, sr = sf.read(io.BytesIO(r.content))
    want, _ = sf.read(root / "tone_440.aiff")
    assert sr == 16000 and len(got) == len(want) and np.abs(got - want).max() < 1e-3
    r2 = client.get("/api/audio", params={"path": "tone_440.aiff"}, headers={"Range": "bytes=0-9"})
    assert r2.status_code == 206 and r2.content == r.content[:10]


def test_only_the_index_files_are_served(client):
    for bad in ("../secret.wav", "/etc/passwd", "sub/../../secret.wav", "nothing.wav", "%2e%2e/secret.wav"):
        r = client.get("/api/audio", params={"path": bad})
        assert r.status_code == 404, bad
    r = client.get("/api/audio", params={"path": "link_out.wav"})  # indexed, but a symlink out of the root
    assert r.status_code == 403 and "outside the collection root" in r.json()["detail"]
    assert client.get("/api/search", params={"path": "link_out.wav"}).status_code == 403
    assert client.get("/api/thumbnail", params={"path": "../secret.wav"}).status_code == 404
    assert client.get("/api/item", params={"path": "../secret.wav"}).status_code == 404
    assert client.get("/api/item", params={"path": "tone_440.aiff"}).json()["duration_s"] == pytest.approx(2.0)


def test_token_is_required_on_every_route(collection):
    _, idx_path, idx = collection
    c = TestClient(create_app(idx_path, model=idx.model, token="s3cret"))
    for url in ("/", "/api/info", "/openapi.json", "/static/app.js", "/api/audio?path=tone_440.aiff", "/api/map"):
        assert c.get(url).status_code == 401, url
        assert c.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401, url
        assert c.get(url, headers={"Authorization": "Bearer s3cret"}).status_code == 200, url
    assert c.post("/api/search/upload", content=b"x").status_code == 401
    assert c.get("/?token=s3cret").status_code == 200  # sets the cookie the page's audio elements then carry
    assert c.get("/api/info").status_code == 200
    assert not is_loopback("0.0.0.0") and is_loopback("127.0.0.1") and is_loopback("::1")


def test_clusters_and_map(collection, tmp_path):
    _, idx_path, idx = collection
    c = TestClient(create_app(idx_path, model=idx.model))
    r = c.get("/api/clusters")
    assert r.status_code == 404 and "audioemb cluster" in r.json()["detail"]
    m = c.get("/api/map").json()
    assert len(m["x"]) == len(idx) and set(m["cluster"]) == {-1} and len(m["paths"]) == len(idx.files) - 0
    summary = cluster_collection(idx_path, tmp_path / "cl", k=3)
    c = TestClient(create_app(idx_path, model=idx.model, clusters=tmp_path / "cl"))
    cl = c.get("/api/clusters").json()
    assert cl["k"] == 3 and [x["size"] for x in cl["clusters"]] == summary["sizes"]
    assert [x["name"] for x in cl["clusters"]] == summary["names"]
    first = cl["clusters"][0]["exemplars"][0]
    assert c.get(first["audio_url"]).status_code in (200, 403)  # the symlink out can be an exemplar, never served
    members = c.get("/api/clusters/0", params={"limit": 100}).json()
    assert members["total"] == summary["sizes"][0]
    assert [x["distance"] for x in members["members"]] == sorted(x["distance"] for x in members["members"])
    assert c.get("/api/clusters/99").status_code == 404
    m = c.get("/api/map").json()
    assert sorted(set(m["cluster"])) == [0, 1, 2] and [x["name"] for x in m["clusters"]] == summary["names"]
    # regression: /api/files and /api/item left every file's cluster null while clusters were loaded
    member = members["members"][0]["path"]
    assert c.get("/api/item", params={"path": member}).json()["cluster"] == 0
    assert {f["cluster"] for f in c.get("/api/files", params={"limit": 1000}).json()["files"]} <= {0, 1, 2, None}
    # regression: clusters of another collection were served, their items failing with 404
    with open(tmp_path / "cl" / "assignments.csv", "a") as f:
        f.write("not/in/this/index.wav,0.000,1.000,1,0.5\n")
    with pytest.raises(ValueError, match=r"1 of the \d+ clustered files are not in the index"):
        create_app(idx_path, model=idx.model, clusters=tmp_path / "cl")


def test_map_of_a_large_index_reads_a_sample(collection, monkeypatch):
    _, idx_path, idx = collection
    from audioemb.serve import state

    monkeypatch.setattr(state, "MAP_POINTS", 3)
    monkeypatch.setattr(Index, "items", lambda self: pytest.fail("the map read every vector of the index"))
    m = TestClient(create_app(idx_path, model=idx.model)).get("/api/map").json()
    assert len(m["x"]) == len(m["start"]) == 3 < len(idx)


def test_keeps_answering_while_index_add_writes(tmp_path, clip_paths):
    root = tmp_path / "grow"
    root.mkdir()
    for p in clip_paths[:4]:
        shutil.copy(p, root / p.name)
    idx = Index.build(root, tmp_path / "idx", model="npc-s.debian")
    c = TestClient(create_app(tmp_path / "idx", model=idx.model))
    for p in clip_paths[4:]:
        shutil.copy(p, root / p.name)
    errors, statuses, done = [], [], threading.Event()

    def writer():
        try:
            Index.load(tmp_path / "idx", model=idx.model).add(root)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=writer)
    t.start()
    while not done.is_set() or len(statuses) < 5:
        statuses.append(c.get("/api/search", params={"path": clip_paths[0].name, "k": 3}).status_code)
    t.join()
    assert not errors and set(statuses) == {200}
    assert c.get("/api/info").json()["n_files"] == len(clip_paths)  # the new version is picked up
    r = c.get("/api/search", params={"path": clip_paths[-1].name, "k": 1}).json()
    assert r["hits"][0]["path"] == clip_paths[-1].name and r["index_version"] == 2


def test_an_index_rebuilt_with_another_model_keeps_the_loaded_version(tmp_path, clip_paths):
    root = tmp_path / "s"
    root.mkdir()
    for p in clip_paths[:3]:
        shutil.copy(p, root / p.name)
    idx = Index.build(root, tmp_path / "idx", model="npc-s.debian")
    c = TestClient(create_app(tmp_path / "idx", model=idx.model))
    Index.build(root, tmp_path / "idx", model="byol-s.debian2", overwrite=True)
    r = c.get("/api/search", params={"path": clip_paths[0].name, "k": 2})
    assert r.status_code == 200 and r.json()["index_version"] == 1 and r.json()["hits"][0]["score"] > 0.999
    assert c.get("/api/info").json()["model"] == "npc-s.debian"


def test_cli_serve_refuses_a_folder_that_is_not_an_index(tmp_path):
    from audioemb.cli import app
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert r.exit_code == 2 and "not an audioemb index" in r.output
    r = CliRunner().invoke(app, ["serve", str(tmp_path), "--clusters", str(tmp_path / "none")])
    assert r.exit_code == 2


def test_transcode_caches_of_dead_servers_are_removed(tmp_path, monkeypatch):
    """Regression: a killed server left its ``audioemb-serve-*`` folder in the temporary folder for good."""
    import subprocess
    import sys
    import tempfile

    from audioemb.serve.media import transcode_cache

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"audioemb-serve-{int(dead.stdout)}-abc"
    live = tmp_path / f"audioemb-serve-{os.getppid()}-def"  # a server still running keeps its folder
    for d in (stale, live):
        (d / "x").mkdir(parents=True)
    cache = transcode_cache()
    assert not stale.exists() and live.exists()
    assert Path(cache.name).name.startswith(f"audioemb-serve-{os.getpid()}-")
    cache.cleanup()
