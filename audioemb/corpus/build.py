"""Build the training corpus and its evaluation task suite from Debian packages.

Output layout (all paths in the manifest are relative to the corpus folder)::

    CORPUS/audio/<source>/...flac   16 kHz mono PCM-16 clips (at most 10 s each)
    CORPUS/manifest.jsonl           one row per clip: path, source, orig, orig_sr, duration_s,
                                    split (train|eval), group, labels, tasks
    CORPUS/tasks/<task>.csv         path,label,group for each evaluation task (held-out clips only)
    CORPUS/recipe.json              package versions, tool versions, seeds, counts and durations

Recipe version 1 (data tag ``debian``) is the corpus every ``*.debian`` model trained on. Version 2 (data
tag ``debian2``) is a superset: the same items, splits and task CSVs, plus game soundtracks, sound-effect
packs, festival voices and two more soundfonts (:mod:`.sources2`, :mod:`.festival`).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import re
import subprocess
import time
import zlib
from collections import Counter, defaultdict
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import AudioError, stream
from ..fsio import atomic_write, atomic_write_json
from . import debian, festival, sources, sources2, synth
from .domains import domain_hours
from .provenance import debian_versions, fingerprints, library_versions

SAMPLE_RATE = 16000
SEGMENT_S = 10.0
MIN_S = 0.1
SILENCE_RMS = 1e-4
RECIPE_VERSION = 1  # the default recipe
DATA_TAGS = {1: "debian", 2: "debian2"}  # recipe version -> the data tag of models trained on it
SOUNDFONTS_V2 = {  # source name -> (package, soundfont inside it), rendered for training like FluidR3
    "fluidsynth-timgm6mb": ("timgm6mb-soundfont", "usr/share/sounds/sf2/TimGM6mb.sf2"),
    "fluidsynth-opl3": ("opl3-soundfont", "usr/share/sounds/sf2/OPL-3_FM_128M.sf2"),
}
TASK_LABEL = {  # task -> the label key it scores
    "speech-keyword": "word",
    "speech-speaker": "speaker",
    "speech-language": "language",
    "speech-tone": "tone",
    "music-family": "family",
    "music-pitch": "pitch",
    "sound-category": "sound_category",
    # recipe 2
    "speech-voice": "voice",
    "music-game": "game",
    "sound-0ad": "sfx_category",
    "sound-action": "action",
}
MIN_CLASS_CLIPS = 4  # a task keeps classes with at least this many clips


def _clip_name(rel: str) -> str:
    stem = rel.rsplit(".", 1)[0]
    safe = re.sub(r"[^A-Za-z0-9._/-]+", "_", stem)
    if safe != stem:
        safe += f"-{zlib.crc32(rel.encode()):08x}"
    return safe


def process_item(args: tuple) -> tuple[list[dict], str | None]:
    """Decode one item to 16 kHz mono, cut it into segments, drop silent ones, write FLACs.

    ``args`` is (item, corpus folder[, rows an earlier manifest holds for this item]). A rebuild reuses
    the clips already written (they are deterministic); with earlier rows whose clips are all there it
    opens no file at all.
    """
    item, corpus = args[0], args[1]
    prior = args[2] if len(args) > 2 else None
    corpus_dir = Path(corpus)
    seg = int(SEGMENT_S * SAMPLE_RATE)
    keep = seg * item.max_segments
    base = f"audio/{item.source}/{_clip_name(item.rel.split('/', 1)[1])}"
    done = _existing(corpus_dir, base)
    if done and prior and sorted(r["path"] for r in prior) == [p.relative_to(corpus_dir).as_posix() for p in done]:
        return [{**_row(item, r["path"], 0, r["orig_sr"]), "duration_s": r["duration_s"]} for r in prior], None
    if done:
        try:
            orig_sr = sf.info(str(item.orig)).samplerate
            return [_row(item, p.relative_to(corpus_dir).as_posix(), sf.info(str(p)).frames, orig_sr)
                    for p in done], None
        except (sf.LibsndfileError, OSError) as e:
            return [], f"{item.orig}: cannot read ({e})"
    try:
        chunks, n = [], 0
        for block in stream(item.orig, SAMPLE_RATE):
            chunks.append(block)
            n += len(block)
            if n >= keep:
                break
        audio = np.concatenate(chunks)[:keep]
        orig_sr = sf.info(str(item.orig)).samplerate
    except AudioError as e:
        return [], str(e)
    rows = []
    n_seg = max(1, int(np.ceil(len(audio) / seg)))
    for k in range(n_seg):
        clip = audio[k * seg:(k + 1) * seg]
        if len(clip) < MIN_S * SAMPLE_RATE or float(np.sqrt(np.mean(clip**2))) < SILENCE_RMS:
            continue
        path = f"{base}-{k:02d}.flac" if n_seg > 1 else f"{base}.flac"
        out = corpus_dir / path
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.exists():
            atomic_write(out, lambda tmp, c=clip: sf.write(tmp, np.clip(c, -1.0, 1.0), SAMPLE_RATE,
                                                          subtype="PCM_16", format="FLAC"))
        rows.append(_row(item, path, len(clip), orig_sr))
    return rows, None


def _existing(corpus_dir: Path, base: str) -> list[Path]:
    single = corpus_dir / f"{base}.flac"
    if single.exists():
        return [single]
    return sorted(corpus_dir.glob(f"{glob.escape(base)}-[0-9][0-9].flac"))


def _row(item: sources.Item, path: str, n_samples: int, orig_sr: int) -> dict:
    return {"path": path, "source": item.source, "orig": item.rel, "orig_sr": int(orig_sr),
            "duration_s": round(n_samples / SAMPLE_RATE, 4), "split": item.split, "group": item.group,
            "labels": item.labels, "tasks": list(item.tasks)}


def _tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def write_tasks(rows: list[dict], corpus: Path) -> dict[str, dict]:
    """Write ``tasks/<task>.csv`` (path relative to the CSV, label, group); return per-task counts."""
    tasks_dir = corpus / "tasks"
    tasks_dir.mkdir(exist_ok=True)
    by_task: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for r in rows:
        for t in r["tasks"]:
            label = r["labels"].get(TASK_LABEL[t])
            if label is not None:
                by_task[t].append(("../" + r["path"], str(label), r["group"]))
    summary = {}
    for t, entries in sorted(by_task.items()):
        counts = Counter(lab for _, lab, _ in entries)
        entries = [e for e in entries if counts[e[1]] >= MIN_CLASS_CLIPS]
        text = io.StringIO(newline="")
        w = csv.writer(text)
        w.writerow(["path", "label", "group"])
        w.writerows(entries)
        atomic_write(tasks_dir / f"{t}.csv", text.getvalue())
        summary[t] = {"clips": len(entries), "classes": len({e[1] for e in entries}),
                      "groups": len({e[2] for e in entries}), "label": TASK_LABEL[t]}
    return summary


def build_packages(version: int) -> tuple[str, ...]:
    """The data packages a recipe version downloads, v1's first."""
    if version == 1:
        return debian.DATA_PACKAGES
    extra = (*sources2.PACKAGES, *(pkg for pkg, _ in SOUNDFONTS_V2.values()))
    return tuple(dict.fromkeys((*debian.DATA_PACKAGES, *extra)))


def earlier_rows(manifests: list[Path]) -> dict[str, list[dict]]:
    """{orig: rows} from earlier manifests (this corpus's own, or one whose clips were linked into it)."""
    known: dict[str, list[dict]] = {}
    for m in manifests:
        if m.exists():
            with open(m) as f:
                for line in f:
                    r = json.loads(line)
                    known.setdefault(f"{r['source']}|{r['orig']}", []).append(r)
    return known


def _decode(items: list[sources.Item], corpus: Path, workers: int, log,
            reuse: tuple[Path, ...] = ()) -> tuple[list[dict], list[str]]:
    rows: list[dict] = []
    errors: list[str] = []
    known = earlier_rows([corpus / "manifest.jsonl", *(Path(c) / "manifest.jsonl" for c in reuse)])
    jobs = [(it, str(corpus), known.get(f"{it.source}|{it.rel}")) for it in items]
    with get_context("fork").Pool(workers, initializer=os.nice, initargs=(19,)) as pool:
        for i, (r, err) in enumerate(pool.imap(process_item, jobs, chunksize=8)):
            rows.extend(r)
            if err:
                errors.append(err)
            if (i + 1) % 2000 == 0:
                log(f"  {i + 1}/{len(items)} files, {len(rows)} clips")
    return rows, errors


def build(corpus: Path, cache: Path, workers: int = 2, n_espeak: int = 6000, log=print,
          version: int = RECIPE_VERSION, reuse: tuple[Path, ...] = ()) -> dict:
    """Run the whole recipe; deterministic for the same package and tool versions.

    ``version=2`` builds corpus v2: every item of version 1, unchanged, plus the sources of
    :mod:`.sources2`, :mod:`.festival` and :data:`SOUNDFONTS_V2`. ``reuse`` names earlier corpora whose
    clips were copied or hard-linked into ``corpus`` (``cp -al OLD/audio NEW/``): their manifests give
    those clips' rows without opening a file.
    """
    if version not in DATA_TAGS:
        raise ValueError(f"unknown corpus recipe version {version}; known: {sorted(DATA_TAGS)}")
    t0 = time.time()
    corpus.mkdir(parents=True, exist_ok=True)
    debian.ensure_tools()
    if version >= 2:
        debian.ensure_packages(festival.TOOL_PACKAGES)
    log("fetching Debian packages ...")
    packages = debian.fetch_packages(cache, build_packages(version))
    pkgs = cache / "pkgs"
    items = sources.recorded_items(pkgs)
    log(f"{len(items)} recorded files; rendering espeak-ng speech ...")
    items += synth.espeak_items(cache, n_train=n_espeak, workers=workers)
    if version >= 2:
        extra = sources2.v2_recorded_items(pkgs, cache)
        log(f"{len(extra)} more recorded files (v2); rendering festival speech ...")
        items += extra + festival.festival_items(cache, workers=workers)
    log(f"decoding {len(items)} files with {workers} workers ...")
    rows, errors = _decode(items, corpus, workers, log, reuse)
    log("rendering fluidsynth notes ...")
    sf2 = pkgs / "fluid-soundfont-gm/usr/share/sounds/sf2/FluidR3_GM.sf2"
    rows += synth.fluidsynth_clips(sf2, cache, corpus, SAMPLE_RATE)
    if version >= 2:
        for k, (name, (pkg, path)) in enumerate(SOUNDFONTS_V2.items()):
            rows += synth.fluidsynth_clips(pkgs / pkg / path, cache, corpus, SAMPLE_RATE, seed=11 + k, name=name,
                                           with_eval=False)
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows]
    text = "".join(lines)
    atomic_write(corpus / "manifest.jsonl", text)
    tasks = write_tasks(rows, corpus)
    stats: dict = defaultdict(lambda: {"clips": 0, "hours": 0.0})
    for r in rows:
        s = stats[f"{r['source']}/{r['split']}"]
        s["clips"] += 1
        s["hours"] += r["duration_s"] / 3600
    tools = {"espeak-ng": _tool_version(["espeak-ng", "--version"]),
             "fluidsynth": _tool_version(["fluidsynth", "--version"])}
    if version >= 2:
        tools["festival"] = _tool_version(["festival", "--version"])
    recipe = {
        "recipe_version": version,
        "data_tag": DATA_TAGS[version],
        "sample_rate": SAMPLE_RATE,
        "segment_s": SEGMENT_S,
        "packages": packages,
        "tools": tools,
        "tool_packages": debian_versions([*debian.TOOL_PACKAGES.values(),
                                          *(festival.TOOL_PACKAGES if version >= 2 else ())]),
        "libraries": library_versions(),
        "clips": len(rows),
        "train_hours": round(sum(r["duration_s"] for r in rows if r["split"] == "train") / 3600, 3),
        "eval_hours": round(sum(r["duration_s"] for r in rows if r["split"] == "eval") / 3600, 3),
        "train_domains": domain_hours(rows, "train"),
        "by_source": {k: {"clips": v["clips"], "hours": round(v["hours"], 3)} for k, v in sorted(stats.items())},
        "tasks": tasks,
        "decode_errors": errors,
        "manifest_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "fingerprints": fingerprints(rows, lines, corpus),
        "build_seconds": round(time.time() - t0, 1),
    }
    atomic_write_json(corpus / "recipe.json", recipe)  # written last: its presence means the corpus is complete
    log(f"corpus: {len(rows)} clips, {recipe['train_hours']} h train, {recipe['eval_hours']} h eval, "
        f"{len(errors)} undecodable files -> {corpus}")
    return recipe
