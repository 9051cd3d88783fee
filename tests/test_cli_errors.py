"""One error handler for every command: a user's mistake is one `error:` line and exit code 2, no traceback."""

from __future__ import annotations

import pytest
from audioemb.cli import app
from typer.testing import CliRunner


@pytest.mark.parametrize("args, needle", [
    (["eval", "missing_dir"], "missing_dir: no such file or folder"),
    (["export", "runs/missing", "-o", "{tmp}/o"], "runs/missing: no such run folder"),
    (["quantize", "no-such-model.x", "-o", "{tmp}/q"], "unknown model 'no-such-model.x'"),
    (["push", "{tmp}", "hf-hub:org/name"], "not an audioemb model folder"),
    (["cluster", "{tmp}", "-o", "{tmp}/c"], "neither an `audioemb embed` output"),
    (["results", "--rerun", "-o", "{tmp}/r.md"], "--rerun needs --corpus"),
    (["results", "--other-tasks", "{tmp}", "-o", "{tmp}/r.md"], "--other-tasks needs a corpus folder with tasks"),
    (["train", "no-such-recipe", "--data", "{tmp}", "--out", "{tmp}/run"], "no recipe 'no-such-recipe'"),
    (["serve", "{tmp}"], "{tmp}"),
    (["models", "nope*"], "no shipped model matches 'nope*'; shipped: "),  # an empty table with exit 0 before
    (["results", "--pattern", "nope*", "-o", "{tmp}/r.md"], "no shipped model matches 'nope*'"),  # an empty page
    (["embed", "{tmp}", "-o", "{tmp}/o", "--ray", "--device", "cuda"], "--device cannot be used with --ray"),
    # a folder that is not a corpus: refused before any work (quantize failed after writing its variant)
    (["quantize", "npc-s.debian", "-o", "{tmp}/q", "--corpus", "{tmp}"], "not a corpus built by `audioemb corpus"),
])
def test_user_mistakes_are_one_line_with_exit_code_2(args, needle, tmp_path):
    r = CliRunner().invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle.format(tmp=tmp_path) in errors[0], r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("args, needle", [
    (["cluster", "{tmp}/out", "-o", "{tmp}/afile"], "File exists: {tmp}/afile"),
    (["quantize", "npc-s.debian", "-o", "{tmp}/afile"], "Not a directory: {tmp}/afile"),
    (["train", "npc-s", "--data", "{tmp}/out", "--out", "{tmp}/afile"], "File exists: {tmp}/afile"),
    (["results", "-o", "{tmp}/out"], "Is a directory: {tmp}/out"),
    (["serve", "{tmp}/afile"], "Not a directory: {tmp}/afile/current.json"),
    # the two folders swapped: audio where an embed output must be, and the other way round
    (["cluster", "{tmp}/clips", "-o", "{tmp}/c"], "{tmp}/clips: a folder of audio files, not yet embedded; embed it"),
    (["index", "build", "{tmp}/out", "-o", "{tmp}/i"], "it is an `audioemb embed` output folder; build the index from "
                                                         "it with --from {tmp}/out"),
    (["search", "{tmp}/out", "{tmp}/clips"], "it is an `audioemb embed` output: build an index from it with "
                                             "`audioemb index build --from {tmp}/out"),
])
def test_a_file_where_a_folder_must_be_is_one_line_with_exit_code_2(args, needle, tmp_path, clip_paths):
    import shutil

    from audioemb.embed import embed_folder

    (tmp_path / "clips").mkdir()
    for p in clip_paths[:2]:
        shutil.copy(p, tmp_path / "clips")
    embed_folder(tmp_path / "clips", tmp_path / "out", "npc-s.debian", progress=False)
    (tmp_path / "afile").write_text("not a folder")
    r = CliRunner().invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle.format(tmp=tmp_path) in errors[0], r.output


def test_library_errors_share_one_base():
    from audioemb.audio import AudioError
    from audioemb.errors import AudioembError
    from audioemb.eval.export_eval import ExportError
    from audioemb.hub import HubError
    from audioemb.modelfolder import ModelFolderError
    from audioemb.quantize import QuantizeError

    for cls in (AudioError, ExportError, HubError, ModelFolderError, QuantizeError):
        assert issubclass(cls, AudioembError) and cls.exit_code == 2


@pytest.mark.parametrize("code, needle", [(28, "No space left on device"), (13, "Permission denied"),
                                          (30, "Read-only file system")])
def test_a_full_or_unwritable_disk_is_one_line_with_exit_code_1(code, needle, tmp_path, monkeypatch):
    import os

    import audioemb.cluster_report as report

    def full(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(tmp_path / "c" / "assignments.csv"))

    monkeypatch.setattr(report, "cluster_collection", full)
    r = CliRunner().invoke(app, ["cluster", str(tmp_path), "-o", str(tmp_path / "c"), "--no-progress"])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {needle}: {tmp_path / 'c' / 'assignments.csv'}"], r.output


def test_ctrl_c_during_embed_says_what_is_kept_and_a_rerun_finishes(tmp_path, clip_paths, tiny_model, monkeypatch):
    """Ctrl-C mid-``embed``: one line saying how many files are saved, exit code 130; the re-run embeds the
    rest (before, the command printed nothing)."""
    import shutil

    import audioemb.embed as embed_mod

    folder = tmp_path / "clips"
    folder.mkdir()
    for p in clip_paths:
        shutil.copy(p, folder / p.name)
    real_add, calls = embed_mod._Job.add, []

    def add_then_interrupt(self, rec, emb):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(rec["path"])
        real_add(self, rec, emb)

    monkeypatch.setattr(embed_mod._Job, "add", add_then_interrupt)
    args = ["embed", str(folder), "-o", str(tmp_path / "out"), "-m", str(tiny_model), "--no-progress"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 130 and "Traceback" not in r.output, r.output
    assert f"interrupted: 2 files are embedded in {tmp_path / 'out'}" in r.output
    monkeypatch.setattr(embed_mod._Job, "add", real_add)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "kept 2" in r.output, r.output
