"""Prepare the domain-adaptation demo of docs/adapt.md: game sound effects from Debian packages that the
training corpus does not use, split by group into an unlabelled training folder and a labelled evaluation set.

    python benchmarks/adapt_demo.py /work/adapt/sfx          # downloads the .debs into ~/.cache/audioemb/debian

Writes ``OUT/unlabelled/<game>/...`` (for ``audioemb train --data``), with ``--long`` also ``OUT/long/<game>/...``
(the files over 20 s, mostly the games' music and ambience loops: more unlabelled audio of the same games, for
a second ``--data``; a long file that shares its group with a held-out effect is left out, so no group is on both
sides), ``OUT/eval/<game>/...`` with
``OUT/eval/labels.csv`` (path,label,group; label = the game, for ``--eval``) and ``OUT/split.json`` (counts,
hours, packages and versions). Files are the packages' own bytes (hard links where possible), deduplicated by
content. A group is a sound without its variant number (``Ptak1``..``Ptak10``), or a whole folder where one
folder is one voice or unit (OpenArena characters, Boswars units, Ardentryst heroes), so no near-duplicate
source is on both sides; about half the groups of each game are held out (a CRC of the group, as the corpus
does).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
from collections import Counter, defaultdict
from pathlib import Path

from audioemb.audio import AudioError, info
from audioemb.corpus.debian import fetch_packages
from audioemb.corpus.sources import held_out
from audioemb.corpus.sources2 import Pack, _stem, pack_files

_G = "usr/share/games"
MAX_S = 20.0  # sound effects only: longer files (music, ambience loops) are left out
MIN_S = 0.1
EVAL_PERCENT = 50
SALT = "adapt-sfx"

# (pack, how a group is formed: "stem" = the file name without its variant number, "folder" = its folder)
PACKS: tuple[tuple[Pack, str], ...] = (
    (Pack("berusky2-data", "berusky2", f"{_G}/berusky2/sound/sound", "sound"), "stem"),
    (Pack("ardentryst", "ardentryst", f"{_G}/ardentryst/Sounds", "sound"), "folder"),
    (Pack("boswars-data", "boswars", f"{_G}/boswars", "sound", exclude=r"(^|/)(music|campaigns|intro)/"), "folder"),
    (Pack("openarena-081-players", "openarena", f"{_G}/openarena/baseoa/pak2-players.pk3!sound/player/",
          "sound"), "folder"),
    (Pack("wordwarvi-sound", "wordwarvi", "usr/share/wordwarvi/sounds", "sound"), "stem"),
    (Pack("searchandrescue-data", "searchandrescue", f"{_G}/searchandrescue", "sound"), "stem"),
    (Pack("caveexpress-data", "caveexpress", f"{_G}/caveexpress/sounds", "sound"), "stem"),
    (Pack("krank", "krank", f"{_G}/krank/sounds", "sound"), "stem"),
    (Pack("amphetamine-data", "amphetamine", f"{_G}/amphetamine/sounds", "sound"), "stem"),
    (Pack("plee-the-bear-data", "plee-the-bear", f"{_G}/plee-the-bear/sound", "sound"), "folder"),
    (Pack("marsshooter-data", "marsshooter", f"{_G}/marsshooter/audio", "sound", exclude=r"(^|/)music/"), "stem"),
    (Pack("freeciv-data", "freeciv", f"{_G}/freeciv/stdsounds", "sound"), "stem"),
    (Pack("powermanga-data", "powermanga", f"{_G}/powermanga/sounds", "sound"), "stem"),
    (Pack("tecnoballz-data", "tecnoballz", f"{_G}/tecnoballz/sounds", "sound"), "stem"),
    (Pack("csmash-data", "csmash", f"{_G}/csmash/wav", "sound"), "stem"),
    (Pack("heroes-sound-effects", "heroes", f"{_G}/heroes/sfx", "sound"), "stem"),
    (Pack("tuxpaint-data", "tuxpaint", "usr/share/tuxpaint/sounds", "sound"), "stem"),
    (Pack("starfighter-data", "starfighter", "usr/share/starfighter/sound", "sound"), "stem"),
    (Pack("trackballs-data", "trackballs", f"{_G}/trackballs/sfx", "sound"), "stem"),
    (Pack("freedink-data", "freedink", f"{_G}/dink/dink/Sound", "sound"), "stem"),
    (Pack("davegnukem-data", "davegnukem", f"{_G}/davegnukem/sounds", "sound"), "stem"),
    (Pack("gigalomania-data", "gigalomania", "usr/share/gigalomania/sound", "sound"), "stem"),
)


def _group(game: str, rel: str, how: str) -> str:
    if how == "folder" and "/" in rel:
        return f"{game}:{rel.rsplit('/', 1)[0].lower()}"
    return f"{game}:{_stem(rel.rsplit('/', 1)[-1])}"


def _place(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def collect(cache: Path, long: bool = False) -> tuple[list[dict], dict]:
    """One row per kept effect (file, game, group, duration), and the package versions; with ``long``, also a
    row (``long`` True) per file over ``MAX_S``."""
    versions = fetch_packages(cache, tuple(dict.fromkeys(p.package for p, _ in PACKS)))
    pkgs = cache / "pkgs"
    rows, seen = [], set()
    for pack, how in PACKS:
        for path, rel, prov in pack_files(pkgs, pack, cache):
            try:
                dur = info(path).duration_s
            except AudioError:
                continue
            if dur < MIN_S or (dur > MAX_S and not long):
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen:  # games copy one sound into several folders
                continue
            seen.add(digest)
            rows.append({"file": path, "rel": rel, "game": pack.game, "package": pack.package, "prov": prov,
                         "group": _group(pack.game, rel, how), "duration_s": dur, "long": dur > MAX_S})
    return rows, versions


def split(rows: list[dict], out: Path) -> dict:
    """Write the two sides. A game with fewer than 2 held-out groups or 8 held-out clips is not scored: all of
    its clips go to the unlabelled side. Long files go to ``long/``, except one whose group a held-out effect
    shares."""
    for side in ("unlabelled", "eval", "long"):
        shutil.rmtree(out / side, ignore_errors=True)
    longs = [r for r in rows if r["long"]]
    rows = [r for r in rows if not r["long"]]
    for r in rows:
        r["side"] = "eval" if held_out(r["group"], EVAL_PERCENT, SALT) else "unlabelled"
    groups, clips = defaultdict(set), Counter()
    for r in rows:
        if r["side"] == "eval":
            groups[r["game"]].add(r["group"])
            clips[r["game"]] += 1
    dropped = sorted(g for g in clips if len(groups[g]) < 2 or clips[g] < 8)
    labels = []
    eval_groups = {r["group"] for r in rows if r["side"] == "eval" and r["game"] not in dropped}
    for r in longs:
        if r["group"] not in eval_groups:
            _place(r["file"], out / "long" / r["game"] / r["rel"])
            r["side"] = "long"
    for r in rows:
        if r["game"] in dropped:
            r["side"] = "unlabelled"
        dest = out / r["side"] / r["game"] / r["rel"]
        _place(r["file"], dest)
        if r["side"] == "eval":
            labels.append((dest.relative_to(out / "eval").as_posix(), r["game"], r["group"]))
    with open(out / "eval" / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "group"])
        w.writerows(labels)
    summary: dict = {"eval_percent": EVAL_PERCENT, "salt": SALT, "dropped_from_eval": dropped, "games": {}}
    for game in sorted({r["game"] for r in rows}):
        per = {}
        for side in ("unlabelled", "eval"):
            sel = [r for r in rows if r["game"] == game and r["side"] == side]
            per[side] = {"clips": len(sel), "groups": len({r["group"] for r in sel}),
                         "minutes": round(sum(r["duration_s"] for r in sel) / 60, 2)}
        summary["games"][game] = per
    kept = [r for r in longs if r.get("side") == "long"]
    summary["long"] = {"files": len(kept), "hours": round(sum(r["duration_s"] for r in kept) / 3600, 3),
                       "left_out_group_held_out": len(longs) - len(kept)}
    for side in ("unlabelled", "eval"):
        summary[side] = {k: sum(g[side][k] for g in summary["games"].values()) for k in ("clips", "groups")}
        summary[side]["hours"] = round(sum(g[side]["minutes"] for g in summary["games"].values()) / 60, 3)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder to write unlabelled/, eval/ and split.json into")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache/audioemb/debian",
                    help="where the .debs are downloaded and unpacked (shared with `audioemb corpus build`)")
    ap.add_argument("--long", action="store_true", help=f"also write the files over {MAX_S:.0f} s into OUT/long/")
    args = ap.parse_args()
    rows, versions = collect(args.cache, args.long)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = split(rows, args.out)
    summary["packages"] = {p: v["version"] for p, v in versions.items()}
    (args.out / "split.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{'game':<16} {'unlabelled clips':>16} {'min':>6} {'eval clips':>10} {'groups':>6} {'min':>6}")
    rows = [(game, g["unlabelled"], g["eval"]) for game, g in summary["games"].items()]
    total = ({"clips": summary["unlabelled"]["clips"], "minutes": summary["unlabelled"]["hours"] * 60},
             {**summary["eval"], "minutes": summary["eval"]["hours"] * 60})
    for game, u, e in [*rows, ("total", *total)]:
        print(f"{game:<16} {u['clips']:>16} {u['minutes']:>6.1f} {e['clips']:>10} {e['groups']:>6} "
              f"{e['minutes']:>6.1f}")
    if args.long:
        print(f"long: {summary['long']['files']} files, {summary['long']['hours']} h "
              f"({summary['long']['left_out_group_held_out']} left out: a held-out effect shares their group)")
    print(f"wrote {args.out / 'unlabelled'}, {args.out / 'eval' / 'labels.csv'}, {args.out / 'split.json'}")


if __name__ == "__main__":
    main()
