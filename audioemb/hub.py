"""Pushing a model folder to the Hugging Face Hub (``audioemb push``); loading is ``load("hf-hub:ORG/NAME@REV")``.

What is uploaded: ``config.json``, ``model.safetensors``, ``model.onnx`` (their sha256 are checked against
the config first, so a corrupt folder is never published), ``loss.png`` when present, and ``README.md``: the
folder's card with hub metadata (library, tags, licence, pipeline tag, embedding size) as YAML front matter.
The folder itself is not modified.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from .errors import AudioembError
from .fsio import atomic_write
from .modelfolder import WEIGHT_FILES, ModelConfig, open_folder

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
EXTRA_FILES = ("loss.png",)


class HubError(AudioembError):
    """A push that cannot be done: a bad repository id, no credentials, or the hub refusing it."""


def parse_repo(spec: str) -> str:
    """``hf-hub:ORG/NAME`` -> ``ORG/NAME`` (refused without the prefix, or with a revision: use --revision)."""
    if not spec.startswith("hf-hub:"):
        raise HubError(f"{spec!r}: give the destination as hf-hub:ORG/NAME")
    repo = spec[len("hf-hub:"):]
    if "@" in repo:
        raise HubError(f"{spec!r}: give the revision with --revision, not @REV")
    if not _REPO.match(repo) or ".." in repo:
        raise HubError(f"{spec!r}: the repository must read ORG/NAME (letters, digits, '-', '_', '.')")
    return repo


def card_metadata(cfg: ModelConfig) -> dict:
    """Hub metadata for a model's config: what the hub shows and filters on."""
    tags = ["audio", "audio-embeddings", "self-supervised", "onnx", "safetensors", "audioemb"]
    if cfg.objective_name:
        tags.append(re.sub(r"[^a-z0-9-]+", "-", str(cfg.objective_name).lower()).strip("-")[:40])
    return {"library_name": "audioemb", "license": cfg.raw.get("license", "apache-2.0"),
            "pipeline_tag": "feature-extraction", "tags": tags,
            "model_name": cfg.name, "embedding_dim": cfg.embedding_dim, "sample_rate": cfg.sample_rate}


def card_with_metadata(card: str, meta: dict) -> str:
    """``card`` with ``meta`` merged into its YAML front matter (added when absent; tags are united)."""
    import yaml

    have: dict = {}
    m = re.match(r"\A---\n(.*?)\n---\n+", card, flags=re.S)
    if m:
        have = yaml.safe_load(m[1]) or {}
        card = card[m.end():]
    merged = {**have, **meta}
    merged["tags"] = list(dict.fromkeys([*(have.get("tags") or []), *meta.get("tags", [])]))
    if not merged["tags"]:
        del merged["tags"]
    front = yaml.safe_dump(merged, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return f"---\n{front}---\n\n{card}"


def push_model(folder: str | os.PathLike, repo: str, revision: str | None = None, private: bool = False,
               message: str | None = None, api=None) -> dict:
    """Upload a model folder to ``hf-hub:ORG/NAME`` (creating the repository, and the branch ``revision``).

    Returns {repo_id, revision, commit, files}. ``api`` is a ``huggingface_hub.HfApi`` (default: a new one,
    authenticated by ``HF_TOKEN`` or ``hf auth login``).
    """
    repo_id = parse_repo(repo)
    mf = open_folder(folder)  # checks both weight files against config.json
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    from huggingface_hub.errors import HfHubHTTPError

    card = mf.file("README.md").read_text() if mf.file("README.md").is_file() else f"# {mf.name}\n"
    with tempfile.TemporaryDirectory(prefix="audioemb-push-") as tmp:
        stage = Path(tmp)
        files = ["config.json", *WEIGHT_FILES]
        for name in files:
            shutil.copy2(mf.file(name), stage / name)
        for name in EXTRA_FILES:
            if mf.file(name).is_file():
                shutil.copy2(mf.file(name), stage / name)
                files.append(name)
        atomic_write(stage / "README.md", card_with_metadata(card, card_metadata(mf.model_config)))
        files.append("README.md")
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            info = api.upload_folder(repo_id=repo_id, folder_path=str(stage), repo_type="model", revision=revision,
                                     commit_message=message or f"audioemb push {mf.name}")
        except HfHubHTTPError as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            hint = " (log in with `hf auth login` or set HF_TOKEN)" if status in (401, 403) else ""
            raise HubError(f"hf-hub:{repo_id}: the hub refused the push{hint}: {e}") from None
        except Exception as e:  # offline mode, no network, a proxy or TLS failure: whatever the HTTP client raises
            raise HubError(f"hf-hub:{repo_id}: could not reach the hub ({type(e).__name__}: {e}); nothing was "
                           f"pushed, and {mf.path} is unchanged") from None
    commit = getattr(info, "oid", None) or str(info)
    return {"repo_id": repo_id, "revision": revision or "main", "commit": commit, "files": sorted(files)}
