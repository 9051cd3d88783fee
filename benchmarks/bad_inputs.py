"""Every kind of bad input tried against ``embed``, ``index build`` and ``search``: prints the table of outcomes
in docs/reliability.md. Run from the repository root: ``python benchmarks/bad_inputs.py``.

Each input is put in a folder beside one good clip and run through the three commands (the CLI, in-process);
the table shows what each recorded or printed for it and the exit code.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from audioemb.cli import app
from typer.testing import CliRunner

CLIPS = Path(__file__).resolve().parents[1] / "examples" / "clips"
GOOD = CLIPS / "speech_hello_hedgewars.wav"


def _cases(d: Path) -> dict[str, Path]:
    """name -> path of one bad input written under ``d``."""
    c: dict[str, Path] = {}

    def put(name: str, data: bytes | None = None, src: Path | None = None) -> Path:
        p = d / name
        if src is not None:
            shutil.copy(src, p)
        else:
            p.write_bytes(data or b"")
        return p

    c["empty file (0 bytes)"] = put("empty.wav")
    c["text file named .mp3"] = put("text.mp3", b"hello, this is text\n")
    c["a macOS AppleDouble file ._good.wav"] = put("._good.wav", b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "
                                                  + bytes(64))
    c["AAC in MP4 (.m4a; its first box only)"] = put("song.m4a", b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isomiso2"
                                                     + bytes(64))
    c["WAV header only"] = put("header.wav", GOOD.read_bytes()[:44])
    c["truncated WAV (half)"] = put("trunc.wav", GOOD.read_bytes()[: GOOD.stat().st_size // 2])
    mp3 = CLIPS / "music_tabla_sonicpi.mp3"
    c["truncated MP3 (half)"] = put("trunc.mp3", mp3.read_bytes()[: mp3.stat().st_size // 2])
    flac = CLIPS / "music_violin_a4_fluidr3.flac"
    c["truncated FLAC (half)"] = put("trunc.flac", flac.read_bytes()[: flac.stat().st_size // 2])
    ogg = CLIPS / "speech_dutch_fillets.ogg"
    c["truncated Ogg Vorbis (half)"] = put("trunc.ogg", ogg.read_bytes()[: ogg.stat().st_size // 2])
    sf.write(d / "zero.wav", np.zeros(0, np.float32), 16000)
    c["zero-length audio"] = d / "zero.wav"
    sf.write(d / "nan.wav", np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    c["all samples NaN"] = d / "nan.wav"
    x = np.sin(np.arange(32000) / 10).astype(np.float32)
    x[::3] = np.nan
    sf.write(d / "third_nan.wav", x, 16000, subtype="FLOAT")
    c["a third of the samples NaN"] = d / "third_nan.wav"
    sf.write(d / "huge.wav", np.full(32000, 3e38, np.float32), 16000, subtype="FLOAT")
    c["finite but huge samples (3e38)"] = d / "huge.wav"
    sf.write(d / "silence.wav", np.zeros(16000, np.float32), 16000)
    c["digital silence"] = d / "silence.wav"
    sf.write(d / "tiny.wav", np.ones(3, np.float32) * 0.1, 16000)
    c["3 samples long"] = d / "tiny.wav"
    sf.write(d / "8ch.wav", np.random.default_rng(0).standard_normal((8000, 8)).astype(np.float32) * 0.1, 8000)
    c["8 channels at 8 kHz"] = d / "8ch.wav"
    (d / "folder.wav").mkdir()
    c["a folder named .wav"] = d / "folder.wav"
    c["file name not valid UTF-8"] = put(os.fsdecode(b"caf\xe9.wav"), src=GOOD)
    c["newline in the file name"] = put("two\nlines.wav", src=GOOD)
    os.symlink(d / "nowhere.wav", d / "dangling.wav")
    c["dangling symlink"] = d / "dangling.wav"
    return c


def _first(lines: list[str], key: str) -> str:
    from audioemb.audio import printable

    key = printable(key)
    hit = next((ln for ln in lines if key in ln), "")
    return hit.split(": ", 2)[-1][:90] if hit else "ok"


def main() -> None:
    runner = CliRunner()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "inputs").mkdir()
        cases = _cases(base / "inputs")
        for name, path in cases.items():
            d = base / f"case{len(rows)}"
            d.mkdir()
            shutil.copy(GOOD, d / "good.wav")
            target = d / path.name
            if path.is_symlink():
                os.symlink(os.readlink(path), target)
            elif path.is_dir():
                target.mkdir()
            else:
                shutil.copy(path, target)
            e = runner.invoke(app, ["embed", str(d), "-o", str(d / "out"), "--no-progress"])
            i = runner.invoke(app, ["index", "build", str(d), "-o", str(d / "idx"), "--no-progress"])
            s = runner.invoke(app, ["search", str(d / "idx"), str(target), "-k", "1"])
            rows.append((name, f"{e.exit_code}: {_first(e.output.splitlines(), path.name)}",
                         f"{i.exit_code}: {_first(i.output.splitlines(), path.name)}",
                         f"{s.exit_code}: {_first(s.output.splitlines(), path.name) if s.exit_code else 'hits'}"))
    print("| input | embed (exit: manifest / stderr) | index build (exit: stderr) | search with it as the query |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(x.replace("|", "\\|") for x in r) + " |")


if __name__ == "__main__":
    main()
