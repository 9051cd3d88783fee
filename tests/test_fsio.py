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


def test_save_npy_is_np_save_and_reports_a_full_disk_with_its_errno(tmp_path):
    import errno
    import io
    import os

    import numpy as np

    from audioemb.fsio import save_npy

    a = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]  # not contiguous
    ref = io.BytesIO()
    np.save(ref, a)
    save_npy(tmp_path / "a.npy.part", a)
    assert (tmp_path / "a.npy.part").read_bytes() == ref.getvalue()
    if os.path.exists("/dev/full"):  # every write there fails with ENOSPC; numpy's tofile dropped the errno
        with pytest.raises(OSError) as e:
            save_npy("/dev/full", np.zeros(100_000, np.float32))
        assert e.value.errno == errno.ENOSPC
    with pytest.raises(ValueError, match="without pickle"):
        save_npy(tmp_path / "o.npy", np.array([{}], dtype=object))


def test_memory_maps_reserve_their_blocks(tmp_path, monkeypatch):
    import errno
    import os

    import numpy as np

    from audioemb.fsio import open_memmap_allocated

    mm = open_memmap_allocated(tmp_path / "a.npy", np.float32, (1000, 16))
    mm[:] = 1.0
    mm.flush()
    assert np.load(tmp_path / "a.npy").sum() == 16000
    calls = []

    def full(fd, offset, length):
        calls.append((offset, length))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)  # a full disk: an error here, not a SIGBUS on first write
    with pytest.raises(OSError) as e:
        open_memmap_allocated(tmp_path / "b.npy", np.int16, (10_000,))
    assert e.value.errno == errno.ENOSPC and calls[0][0] == 0 and calls[0][1] == os.path.getsize(tmp_path / "b.npy")

    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported)  # a file system that cannot reserve: sparse, as before
    assert open_memmap_allocated(tmp_path / "c.npy", np.int16, (10,)).shape == (10,)


def test_a_failed_write_names_the_file(tmp_path):
    import errno
    import os

    def full(tmp):
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a file object's write raises it: no name

    with pytest.raises(OSError) as e:
        atomic_write(tmp_path / "a.npy", full)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "a.npy")
    assert list(tmp_path.iterdir()) == []
