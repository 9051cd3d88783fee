"""``--json`` summaries of the commands that run jobs (embed; cluster's is in test_cluster.py)."""

from __future__ import annotations

import json
import shutil

from audioemb.cli import app
from typer.testing import CliRunner


def test_embed_json_summary_names_each_failure(tmp_path, tiny_model, clip_paths):
    folder = tmp_path / "sounds"
    folder.mkdir()
    for p in clip_paths[:3]:
        shutil.copy(p, folder / p.name)
    (folder / "broken.wav").write_bytes(b"RIFF not really audio")
    r = CliRunner().invoke(app, ["embed", str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_model),
                                 "--no-progress", "--json"])
    assert r.exit_code == 1, r.output
    s = json.loads(r.stdout)
    assert (s["total"], s["embedded"], s["failed"]) == (4, 3, 1)
    assert [f["path"] for f in s["failures"]] == ["broken.wav"] and s["failures"][0]["error"]
