"""atomic_write: the whole new file or the old one, never a torn one; temporaries are cleaned up."""

import json

import pytest

from audioemb.errors import AudioembError, MissingExtraError
from audioemb.fsio import atomic_write, atomic_write_json


def test_atomic_write_bytes_text_and_callable(tmp_path):
    p = tmp_path / "a.bin"
    atomic_write(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    atomic_write(p, "héllo")
    assert p.read_text(encoding="utf-8") == "héllo"
    atomic_write(p, lambda t: t.write_bytes(b"xyz"))
    assert p.read_bytes() == b"xyz"
    atomic_write_json(tmp_path / "c.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "c.json").read_text()) == {"k": [1, 2]}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.bin", "c.json"]


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write(p, "old")

    def boom(t):
        t.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(p, boom)
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["a.txt"]


def test_missing_extra_is_an_input_error():
    e = MissingExtraError("plots", "matplotlib", "plot")
    assert isinstance(e, AudioembError) and isinstance(e, ImportError) and e.exit_code == 2


def test_publish_renames_a_tool_written_file(tmp_path):
    from audioemb.fsio import publish

    tmp = tmp_path / "clip.tmp.wav"
    tmp.write_bytes(b"RIFF")
    assert publish(tmp, tmp_path / "clip.wav") == tmp_path / "clip.wav"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.wav"] and (tmp_path / "clip.wav").read_bytes() == b"RIFF"
