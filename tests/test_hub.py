"""``audioemb push`` against a stand-in for the hub's HTTP API, and the round trip through a hub-layout cache."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from audioemb.cli import app
from typer.testing import CliRunner

from audioemb.hub import HubError, card_with_metadata, parse_repo, push_model
from audioemb.registry import pretrained_dir
from audioemb.runtime import load

runner = CliRunner()


class HubCacheApi:
    """Stands in for ``huggingface_hub.HfApi`` offline: each upload becomes a commit stored as the hub's
    download cache lays it out (``models--ORG--NAME/blobs``, ``snapshots/COMMIT``, ``refs/BRANCH``), so
    ``snapshot_download`` with ``HF_HUB_OFFLINE`` finds it exactly as it would after a download."""

    def __init__(self, cache: Path):
        self.cache, self.calls, self.repos = cache, [], {}

    def _repo(self, repo_id: str) -> Path:
        return self.cache / ("models--" + repo_id.replace("/", "--"))

    def create_repo(self, repo_id, *, private=None, exist_ok=False, repo_type=None, **_):
        self.calls.append(("create_repo", repo_id, private))
        if repo_id in self.repos and not exist_ok:
            raise AssertionError("repo exists")
        self.repos.setdefault(repo_id, {"private": private, "branches": {"main": None}})

    def create_branch(self, repo_id, *, branch, exist_ok=False, repo_type=None, **_):
        self.calls.append(("create_branch", repo_id, branch))
        self.repos[repo_id]["branches"].setdefault(branch, self.repos[repo_id]["branches"]["main"])

    def upload_folder(self, *, repo_id, folder_path, repo_type=None, revision=None, commit_message=None, **_):
        branch = revision or "main"
        assert branch in self.repos[repo_id]["branches"], "upload to a branch that was not created"
        files = sorted(p.name for p in Path(folder_path).iterdir())
        commit = hashlib.sha1(f"{repo_id}{branch}{commit_message}{files}".encode()).hexdigest()
        root = self._repo(repo_id)
        snap = root / "snapshots" / commit
        snap.mkdir(parents=True)
        (root / "blobs").mkdir(exist_ok=True)
        for name in files:
            data = (Path(folder_path) / name).read_bytes()
            blob = root / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            (snap / name).symlink_to(os.path.relpath(blob, snap))
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / branch).write_text(commit)
        self.repos[repo_id]["branches"][branch] = commit
        self.calls.append(("upload_folder", repo_id, branch, tuple(files), commit_message))

        class Info:
            oid = commit

        return Info()


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return HubCacheApi(cache)


def test_push_then_load_round_trip(hub, clip_paths):
    src = pretrained_dir() / "npc-s.debian"
    r = push_model(src, "hf-hub:someorg/npc-small", revision="v1", private=True, api=hub)
    assert r["repo_id"] == "someorg/npc-small" and r["revision"] == "v1"
    assert r["files"] == ["README.md", "config.json", "loss.png", "model.onnx", "model.safetensors"]
    assert hub.calls[0] == ("create_repo", "someorg/npc-small", True) and hub.calls[1][0] == "create_branch"
    for spec in (f"hf-hub:someorg/npc-small@{r['commit']}", "hf-hub:someorg/npc-small@v1"):
        m = load(spec)
        assert m.name == "npc-s.debian"
        np.testing.assert_array_equal(m.encode(clip_paths[0]), load("npc-s.debian").encode(clip_paths[0]))
    snap = hub._repo("someorg/npc-small") / "snapshots" / r["commit"]
    card = (snap / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: audioemb\n") and "pipeline_tag: feature-extraction" in card
    body = (src / "README.md").read_text().split("\n---\n", 1)[1]
    assert "embedding_dim: 192" in card and "- npc" in card and "- audio-embeddings" in card and card.endswith(body)
    assert "pipeline_tag" not in (src / "README.md").read_text()  # the folder itself is not modified
    with pytest.raises(Exception, match=r"main|revision|snapshot|offline|cache"):
        load("hf-hub:someorg/npc-small@main")  # nothing was pushed to main


def test_push_refuses_bad_input(hub, tmp_path):
    for bad in ("someorg/x", "hf-hub:nope", "hf-hub:a/b@v1", "hf-hub:../x"):
        with pytest.raises(HubError):
            parse_repo(bad)
    broken = tmp_path / "broken"
    shutil.copytree(pretrained_dir() / "npc-s.debian", broken)
    with open(broken / "model.onnx", "ab") as f:
        f.write(b"\0")
    r = runner.invoke(app, ["push", str(broken), "hf-hub:someorg/broken"])
    assert r.exit_code == 2 and "sha256" in r.output and "does not match" in r.output
    assert hub.calls == []  # nothing reached the hub
    r = runner.invoke(app, ["push", str(pretrained_dir() / "npc-s.debian"), "someorg/x"])
    assert r.exit_code == 2 and "hf-hub:ORG/NAME" in r.output


def test_cli_push_uses_hfapi(hub, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: hub)
    r = runner.invoke(app, ["push", str(pretrained_dir() / "byol-s.debian2"), "hf-hub:someorg/byol"])
    assert r.exit_code == 0, r.output
    assert "someorg/byol@main" in r.output and 'audioemb.load("hf-hub:someorg/byol@' in r.output
    assert load("hf-hub:someorg/byol").name == "byol-s.debian2"


def test_an_unreachable_hub_is_one_line(monkeypatch):
    """Regression: offline (HF_HUB_OFFLINE=1) or without a network, `push` was a traceback of the HTTP client."""
    import huggingface_hub
    from huggingface_hub.errors import OfflineModeIsEnabled

    class Unreachable:
        def __init__(self, error):
            self.error = error

        def create_repo(self, *args, **kwargs):
            raise self.error

    for error in (OfflineModeIsEnabled("offline mode is enabled"), ConnectionError("[Errno 101] unreachable")):
        monkeypatch.setattr(huggingface_hub, "HfApi", lambda e=error: Unreachable(e))
        r = runner.invoke(app, ["push", str(pretrained_dir() / "npc-s.debian"), "hf-hub:someorg/x"])
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert f"could not reach the hub ({type(error).__name__}" in r.output and "nothing was pushed" in r.output


def test_card_front_matter_is_replaced():
    card = card_with_metadata("---\nold: 1\ntags: [x, a]\n---\n\n# Title\n", {"library_name": "audioemb",
                                                                               "tags": ["a", "b"]})
    assert card == "---\nold: 1\ntags:\n- x\n- a\n- b\nlibrary_name: audioemb\n---\n\n# Title\n"
    assert card_with_metadata("# T\n", {"license": "mit"}) == "---\nlicense: mit\n---\n\n# T\n"
