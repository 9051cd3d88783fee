"""The corpus's synthesised sources: espeak-ng speech and fluidsynth notes from FluidR3_GM.

Both are deterministic for a given seed and tool version. espeak-ng clips are written as WAV files into
the cache and then decoded like any recorded file. fluidsynth renders one long MIDI file per split with
reverb and chorus off, which is cut into one clip per note.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from ..fsio import publish
from .sources import Item, held_out

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GM_FAMILIES = ("piano", "chromatic-percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
               "reed", "pipe", "synth-lead", "synth-pad", "synth-effects", "ethnic", "percussive",
               "sound-effects")


def espeak_voices() -> tuple[list[str], list[str]]:
    """(languages, voice variants) that this espeak-ng knows, sorted."""
    out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True).stdout
    langs = sorted({line.split()[1] for line in out.splitlines()[1:] if line.strip()})
    langs = [lang for lang in langs if _speaks(lang)]
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    variants = sorted({line.split()[-1].split("/")[-1] for line in out.splitlines()[1:] if "!v/" in line})
    return langs, variants


def _speaks(voice: str) -> bool:
    r = subprocess.run(["espeak-ng", "-v", voice, "--stdout", "1"], capture_output=True)
    return r.returncode == 0 and len(r.stdout) > 44


def _espeak(path: Path, voice: str, pitch: int, speed: int, text: str) -> Path | None:
    """Render one clip; None where espeak-ng fails on that voice and text (it crashes on a few)."""
    if not path.exists():
        tmp = path.with_suffix(".tmp.wav")
        r = subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(tmp), text],
                           capture_output=True)
        if r.returncode != 0:
            tmp.unlink(missing_ok=True)
            return None
        publish(tmp, path)
    return path


def espeak_items(cache: Path, n_train: int = 6000, seed: int = 0, workers: int = 2) -> list[Item]:
    """Render espeak-ng speech: numbers in every language for training, keywords for evaluation.

    Voice variants are split 70/30: training clips use one set, the ``speech-keyword`` task the other,
    so keywords are scored across voices the encoder never heard. Each eval clip's group is its voice.
    """
    langs, variants = espeak_voices()
    train_v = [v for v in variants if not held_out(v, 30, "espeak")]
    eval_v = [v for v in variants if held_out(v, 30, "espeak")]
    rng = np.random.default_rng(seed)
    out_dir = cache / "synth" / "espeak"
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for i in range(n_train):
        lang, var = langs[rng.integers(len(langs))], train_v[rng.integers(len(train_v))]
        pitch, speed, number = int(rng.integers(20, 81)), int(rng.integers(130, 211)), int(rng.integers(0, 100000))
        labels = {"language": lang, "voice": var, "text": str(number)}
        jobs.append((out_dir / f"train-{i:05d}.wav", f"{lang}+{var}", pitch, speed, str(number), labels,
                     var, "train", ()))
    for var in eval_v:
        for accent in ("en-us", "en-gb"):
            for word in KEYWORDS:
                pitch, speed = int(rng.integers(20, 81)), int(rng.integers(130, 211))
                labels = {"language": accent, "voice": var, "word": word}
                jobs.append((out_dir / f"kw-{_safe(var)}-{accent}-{word}.wav", f"{accent}+{var}", pitch, speed,
                             word, labels, var, "eval", ("speech-keyword",)))
    with ThreadPoolExecutor(workers) as ex:
        made = list(ex.map(lambda j: _espeak(*j[:5]), jobs))
    return [Item("espeak", j[0], f"espeak-ng/{j[0].name}", group=j[6], labels=j[5], split=j[7], tasks=j[8])
            for j, ok in zip(jobs, made) if ok is not None]


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", s)


def _write_midi(path: Path, notes: list[tuple[int, int, int, float, float]]) -> None:
    """notes: (channel, program, pitch, velocity, start_s, duration_s); one tempo of 120 bpm."""
    import mido

    tpb = 480  # ticks per beat; 120 bpm -> 960 ticks per second
    tps = 2 * tpb
    events = []
    for ch, prog, pitch, vel, start, dur in notes:
        t0, t1 = round(start * tps), round((start + dur) * tps)
        if ch != 9:
            events.append((t0, 0, mido.Message("program_change", channel=ch, program=prog)))
        events.append((t0, 1, mido.Message("note_on", channel=ch, note=pitch, velocity=vel)))
        events.append((t1, 2, mido.Message("note_off", channel=ch, note=pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    mid = mido.MidiFile(ticks_per_beat=tpb)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000))
    now = 0
    for t, _, msg in events:
        track.append(msg.copy(time=t - now))
        now = t
    mid.save(path)


def _render(sf2: Path, midi: Path, wav: Path, sample_rate: int) -> None:
    if wav.exists():
        return
    tmp = wav.with_suffix(".tmp.wav")
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-R", "0", "-C", "0", "-r", str(sample_rate),
                    "-O", "float", "-T", "wav", "-F", str(tmp), str(sf2), str(midi)], check=True,
                   capture_output=True)
    publish(tmp, wav)


def fluidsynth_clips(sf2: Path, cache: Path, corpus: Path, sample_rate: int, seed: int = 1,
                     min_rms: float = 0.002, name: str = "fluidsynth", with_eval: bool = True) -> list[dict]:
    """Render and cut notes of all 128 GM programs (and the GM drum kit) into clips in ``corpus``.

    Training: 30 notes per program at random pitches (36-96) and velocities, and 4 velocities of every
    drum sound. Evaluation (tasks ``music-family`` and ``music-pitch``, grouped by program): every
    program playing MIDI notes 48-72 at velocity 90. Each clip is 1.5 s: a 1 s note and its release.
    Notes quieter than ``min_rms`` (out of the instrument's range) are dropped. ``name`` is the source
    name (its clips go to ``audio/<name>/``); ``with_eval=False`` renders the training notes only, as
    corpus v2 does for its extra soundfonts.
    """
    rng = np.random.default_rng(seed)
    slot, dur, clip_s = 2.0, 1.0, 1.5
    plans: dict[str, list] = {"train": [], "eval": []}
    t = 0.5
    for prog in range(128):
        for _ in range(30):
            plans["train"].append((0, prog, int(rng.integers(36, 97)), int(rng.integers(50, 128)), t, dur))
            t += slot
    for drum in range(35, 82):
        for vel in (50, 80, 100, 127):
            plans["train"].append((9, -1, drum, vel, t, dur))
            t += slot
    t = 0.5
    for prog in range(128 if with_eval else 0):
        for pitch in range(48, 73):
            plans["eval"].append((0, prog, pitch, 90, t, dur))
            t += slot
    plans = {k: v for k, v in plans.items() if v}
    out_dir = cache / "synth" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, notes in plans.items():
        _write_midi(out_dir / f"{split}.mid", notes)
    with ThreadPoolExecutor(2) as ex:
        list(ex.map(lambda s: _render(sf2, out_dir / f"{s}.mid", out_dir / f"{s}.wav", sample_rate), plans))
    rows = []
    for split, notes in plans.items():
        audio, sr = sf.read(out_dir / f"{split}.wav", dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        dest = corpus / "audio" / name / split
        dest.mkdir(parents=True, exist_ok=True)
        for i, (ch, prog, pitch, vel, start, _) in enumerate(notes):
            a, b = round(start * sr), round((start + clip_s) * sr)
            clip = audio[a:b]
            if len(clip) < b - a or float(np.sqrt(np.mean(clip**2))) < min_rms:
                continue
            drum = ch == 9
            stem = f"drum{pitch:03d}-v{vel:03d}-{i:05d}" if drum else f"p{prog:03d}-n{pitch:03d}-v{vel:03d}-{i:05d}"
            path = dest / f"{stem}.flac"
            if not path.exists():
                sf.write(path, np.clip(clip, -1, 1), sr, subtype="PCM_16")
            labels = ({"family": "drums", "drum": str(pitch), "velocity": str(vel)} if drum else
                      {"family": GM_FAMILIES[prog // 8], "program": str(prog), "pitch": str(pitch),
                       "velocity": str(vel)})
            rows.append({
                "path": path.relative_to(corpus).as_posix(), "source": name,
                "orig": f"{name}/{split}.mid#note{i}", "orig_sr": sr, "duration_s": round(clip_s, 4),
                "split": split, "group": f"drums/{pitch}" if drum else f"program/{prog}", "labels": labels,
                "tasks": ["music-family", "music-pitch"] if split == "eval" else [],
            })
    return rows
