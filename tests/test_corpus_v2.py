"""Corpus v2 on small fake package trees: source parsing, splits by group, archives, and that v1 is intact."""

from __future__ import annotations

import csv
import struct
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from audioemb.corpus import build, festival, sources, sources2
from audioemb.corpus.domains import domain_hours, domain_of

SR = 22050


def _wav(path: Path, seconds: float, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return path


def _fake_tree(root: Path) -> Path:
    """A few v1 packages (gcin, Sonic Pi, Hedgewars) and v2 packs (soundtracks, sound packs, an archive)."""
    pkgs = root / "pkgs"
    gcin = pkgs / "gcin-voice/usr/share/gcin-voice/ogg"
    for k, syl in enumerate(f"{c}{v}" for c in "bmdlnt" for v in "aeiou"):
        for tone in "1234":
            for spk in ("3", "5"):
                _wav(gcin / f"{syl}{tone}" / f"{spk}.wav", 0.2, 200 + 10 * k)
    pi = pkgs / "sonic-pi-samples/usr/share/sonic-pi/samples"
    for cat in ("bd", "drum", "ambi", "elec"):
        for i in range(8):
            _wav(pi / f"{cat}_s{i}.wav", 0.2, 300 + 20 * i)
    hw = pkgs / "hedgewars-data/usr/share/games/hedgewars/Data/Sounds"
    for pack in ("Classic", "Pirate", "Robot"):
        for phrase in ("Hello", "Boom", "Ouch", "Yessir", "Coward", "Missed"):
            _wav(hw / "voices" / pack / f"{phrase}.ogg", 0.2)
    _wav(hw / "explosion.ogg", 0.3)
    music = pkgs / "wesnoth-1.16-music/usr/share/games/wesnoth/1.16/data/core/music"
    for i in range(30):
        _wav(music / f"track_{i:02d}.ogg", 1.0, 100 + 7 * i)
    wz = pkgs / "warzone2100-music/usr/share/games/warzone2100/music"
    _wav(wz / "albums/a/one.opus.wav", 1.0, 555)
    (wz / "albums/b").mkdir(parents=True)
    (wz / "albums/b/one-link.wav").symlink_to(wz / "albums/a/one.opus.wav")
    mg = pkgs / "megaglest-data/usr/share/games/megaglest"
    _wav(mg / "techs/megapack/factions/tech/music/music_tech.ogg", 1.0, 660)
    for u, unit in enumerate(("archer", "swordman", "horseman", "golem", "pig", "daemon", "guard", "worker",
                              "catapult", "summoner")):
        for action in ("attack", "die", "ack", "walk"):
            for v in (1, 2):
                _wav(mg / f"techs/megapack/factions/f/units/{unit}/sounds/{unit}_{action}{v}.wav", 0.2,
                     100 + 50 * u + 10 * v + len(action))
    _wav(mg / "tilesets/forest/sounds/wind.wav", 0.5, 777)
    _wav(mg / "tilesets/jungle/sounds/wind.wav", 0.5, 777)  # a copy: counted once
    zdir = pkgs / "0ad-data/usr/share/games/0ad/mods/public"
    zdir.mkdir(parents=True)
    with zipfile.ZipFile(zdir / "public.zip", "w") as z:
        for i in range(6):
            z.write(_wav(root / "z" / f"m{i}.wav", 0.5, 400 + i), f"audio/music/Song_{i}.wav")
        for c, cat in enumerate(("attack/impact", "attack/weapon", "resource/mining", "actor/fauna")):
            for i in range(12):
                src = _wav(root / "z" / cat / f"{i}.wav", 0.2, 500 + 30 * i + 7 * c)
                z.write(src, f"audio/{cat}/sound{i // 2}_{i % 2}.wav")
        z.write(_wav(root / "z/voice.wav", 0.2, 999), "audio/voice/greek/civ/attack.wav")
        z.writestr("art/textures/skin.png", b"not audio")
    return pkgs


def test_v2_sources_parse_and_split_by_group(tmp_path):
    pkgs = _fake_tree(tmp_path)
    items = sources2.v2_recorded_items(pkgs, tmp_path / "cache")
    by_src: dict[str, list] = {}
    for it in items:
        by_src.setdefault(it.source, []).append(it)
    wes = by_src["music-wesnoth"]
    assert len(wes) == 30 and {it.labels["domain"] for it in wes} == {"music"}
    held = [it for it in wes if it.split == "eval"]
    assert len(held) == 6 and all(it.tasks == ("music-game",) and it.max_segments == 6 for it in held)
    assert all(it.max_segments == sources2.TRACK_SEGMENTS for it in wes if it.split == "train")
    assert {it.group for it in wes} == {f"wesnoth/track_{i:02d}" for i in range(30)}
    assert len(by_src["music-warzone2100"]) == 1  # the symlinked copy is skipped
    assert [it.labels["track"] for it in by_src["music-megaglest"]] == ["techs/megapack/factions/tech/music/music_tech"]
    # the zip archive: music and effects, speech marked, non-audio members ignored
    oad_music = by_src["music-0ad"]
    assert len(oad_music) == 6 and all(Path(it.orig).exists() for it in oad_music)
    oad = by_src["0ad"]
    assert len(oad) == 4 * 12 + 1
    voice = [it for it in oad if it.labels["domain"] == "speech"]
    assert len(voice) == 1 and voice[0].split == "train" and not voice[0].tasks
    fx_eval = [it for it in oad if it.tasks == ("sound-0ad",)]
    assert len(fx_eval) == 4 * 2 * 2  # per category: 2 of its 6 sounds, each with its 2 variants
    assert {it.labels["sfx_category"] for it in fx_eval} == {
        "attack/impact", "attack/weapon", "resource/mining", "actor/fauna"}
    groups = {}
    for it in oad:  # variants of one sound (sound0_1, sound0_2, ...) share a group and a split
        groups.setdefault(it.group, set()).add(it.split)
    assert all(len(s) == 1 for s in groups.values()) and len(groups) == 4 * 6 + 1
    # MegaGlest: units held out whole; spoken acknowledgements are speech, never in the task
    mg = by_src["megaglest"]
    assert sum(1 for it in mg if "wind" in it.rel) == 1
    units = {}
    for it in mg:
        if "/units/" in it.rel and it.labels["domain"] == "sound":
            units.setdefault(it.group, set()).add(it.split)
    assert all(len(s) == 1 for s in units.values()) and {"eval"} in units.values()
    acts = {it.labels["action"] for it in mg if it.tasks == ("sound-action",)}
    assert acts and acts <= {"attack", "die", "walk"}
    assert all(it.labels["domain"] == "speech" for it in mg if "_ack" in it.rel)


def test_v2_is_a_superset_and_leaves_v1_tasks_alone(tmp_path):
    pkgs = _fake_tree(tmp_path)
    v1 = sources.recorded_items(pkgs)
    v2 = sources2.v2_recorded_items(pkgs, tmp_path / "cache")
    v1_sources = {it.source for it in v1} | {"espeak", "fluidsynth", "supertux", "freedroidrpg", "lincity",
                                             "colobot", "sound", "oxygen", "fillets", "tuxpaint", "klettres",
                                             "ktuberling"}
    assert not v1_sources & {it.source for it in v2}  # v2 never writes into a v1 source's folder
    assert not v1_sources & set(build.SOUNDFONTS_V2) and "festival" not in v1_sources
    assert set(build.build_packages(2)[:len(build.build_packages(1))]) == set(build.build_packages(1))

    def rows(items):
        return [build._row(it, f"audio/{it.source}/{i}.flac", 16000, SR) for i, it in enumerate(items)]

    only_v1, both = tmp_path / "c1", tmp_path / "c2"
    for d in (only_v1, both):
        d.mkdir()
    t1 = build.write_tasks(rows(v1), only_v1)
    t2 = build.write_tasks(rows(v1 + v2), both)
    assert set(t1) == {"speech-tone", "speech-speaker", "sound-category"}
    for task in t1:  # the v1 task files are byte-identical with v2's sources added
        assert (only_v1 / "tasks" / f"{task}.csv").read_bytes() == (both / "tasks" / f"{task}.csv").read_bytes()
    assert {"music-game", "sound-0ad", "sound-action"} <= set(t2)
    with open(both / "tasks" / "music-game.csv") as f:
        labels = {r["label"] for r in csv.DictReader(f)}
    assert labels <= {"wesnoth", "0ad", "warzone2100", "megaglest"}
    assert all(t.split("-")[0] in {"speech", "music", "sound"} for t in build.TASK_LABEL)


def test_domains_of_v1_and_v2_rows():
    assert domain_of({"source": "espeak", "labels": {}}) == "speech"
    assert domain_of({"source": "fluidsynth-opl3", "labels": {}}) == "music"
    assert domain_of({"source": "tuxpaint", "labels": {"kind": "effect"}}) == "sound"
    assert domain_of({"source": "tuxpaint", "labels": {"kind": "description"}}) == "speech"
    assert domain_of({"source": "hedgewars", "labels": {"speaker": "Pirate"}}) == "speech"
    assert domain_of({"source": "supertux", "labels": {"category": "music"}}) == "music"
    assert domain_of({"source": "0ad", "labels": {"domain": "speech"}}) == "speech"
    rows = [{"source": "espeak", "labels": {}, "split": "train", "duration_s": 3600.0},
            {"source": "music-naev", "labels": {"domain": "music"}, "split": "train", "duration_s": 7200.0},
            {"source": "0ad", "labels": {"domain": "sound"}, "split": "eval", "duration_s": 3600.0}]
    h = domain_hours(rows)
    assert h["music"] == {"hours": 2.0, "share": 0.667, "clips": 1, "clip_share": 0.5}
    assert h["sound"]["hours"] == 0.0


def test_festival_sentences_are_distinct_groups(tmp_path):
    (tmp_path / "GPL-3").write_text("Short one. This sentence has exactly seven words in it. "
                                    "Version 3.0 is excluded here by the rule on numbers. "
                                    "This sentence has exactly seven words in it. "
                                    "Another plain sentence of enough words.")
    assert festival.sentences(tmp_path) == ["This sentence has exactly seven words in it.",
                                            "Another plain sentence of enough words."]
    pairs = festival.texts(10_000)
    assert len(pairs) == len({s for s, _ in pairs}) == len(festival.sentences())


def test_long_track_is_cut_into_segments(tmp_path):
    track = _wav(tmp_path / "pkgs/x/track.wav", 35.0)
    it = sources.Item("music-x", track, "x/track.wav", group="x/track", max_segments=99)
    rows, err = build.process_item((it, str(tmp_path / "corpus")))
    assert err is None and [r["duration_s"] for r in rows] == [10.0, 10.0, 10.0, 5.0]
    it.max_segments = 2
    rows2, _ = build.process_item((sources.Item("music-y", track, "y/track.wav", group="y", max_segments=2),
                                   str(tmp_path / "corpus")))
    assert len(rows2) == 2 and rows2[0]["path"].endswith("track-00.flac")


def test_openttd_cat_archive_is_unpacked(tmp_path):
    wavs = []
    for i, name in enumerate((b'"Ship horn". By someone.', b'"Unused/Nothing". Empty.', b'"Bird (2)". CC0.')):
        buf = tmp_path / f"{i}.wav"
        if i != 1:
            _wav(buf, 0.1, 300 + 100 * i)
        wavs.append((name, buf.read_bytes() if i != 1 else b""))
    header = 8 * len(wavs)
    body, table = b"", b""
    for name, data in wavs:
        entry = bytes([len(name)]) + name + data
        table += struct.pack("<II", (header + len(body)) | 0x80000000, len(entry))
        body += entry
    cat = tmp_path / "pkgs/openttd-opensfx/usr/share/games/openttd/baseset/opensfx/opensfx.cat"
    cat.parent.mkdir(parents=True)
    cat.write_bytes(table + body)
    packs = tuple(p for p in sources2.PACKS if p.package == "openttd-opensfx")
    items = sources2.v2_recorded_items(tmp_path / "pkgs", tmp_path / "cache", packs)
    assert [Path(it.orig).name for it in items] == ["00-ship_horn.wav", "02-bird_2.wav"]
    assert sf.info(str(items[1].orig)).frames == int(0.1 * SR)


def test_rebuild_takes_rows_from_an_earlier_manifest(tmp_path):
    track = _wav(tmp_path / "pkgs/x/track.wav", 12.0)
    it = sources.Item("music-x", track, "x/track.wav", group="x/track", max_segments=99)
    corpus = tmp_path / "corpus"
    first, _ = build.process_item((it, str(corpus)))
    again, _ = build.process_item((it, str(corpus)))  # reuse by opening the clips
    track.unlink()  # with the earlier rows, no file needs opening
    it.labels = {"domain": "music"}
    cached, err = build.process_item((it, str(corpus), first))
    assert err is None and first == again
    assert [{**r, "labels": {}} for r in cached] == first and cached[0]["labels"] == {"domain": "music"}
    stale = [{**first[0], "path": "audio/music-x/other.flac"}]
    _, err = build.process_item((it, str(corpus), stale))  # rows that do not match the clips are not used
    assert err is not None and "track.wav" in err


def test_cli_refuses_an_unknown_recipe_version(tmp_path):
    from audioemb.cli import app
    from typer.testing import CliRunner

    out = tmp_path / "corpus"
    r = CliRunner().invoke(app, ["corpus", "build", str(out), "--version", "3"])
    assert r.exit_code == 1 and "unknown corpus recipe version 3" in r.output and not out.exists()
