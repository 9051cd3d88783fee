"""Corpus v2's added recorded sources: game soundtracks and sound-effect packs from Debian packages.

Every source is one row of :data:`PACKS`: a package, a folder inside it (or inside a zip archive it ships,
written ``archive.zip!prefix``; OpenTTD's ``.cat`` sound archive is read too), the domain of its files
(``music`` or ``sound``), and regular expressions on the path relative to that folder that pick files
and mark the spoken lines of sound packs (unit acknowledgements, announcers), which are counted as speech.

- Music: whole tracks (up to 16.5 min), cut into 10-s segments at build time. 20 % of each game's tracks
  (at least 2, for games with 5 or more tracks) are held out for ``music-game`` (which game's soundtrack a
  segment is from); the split is by track, so no track has segments on both sides. Held-out tracks keep
  their first 6 segments.
- Sound effects: all for training, except 30 % of each 0 A.D. effect category's sounds (task ``sound-0ad``,
  held out by sound name, variants together) and 30 % of the MegaGlest units (task ``sound-action``, what
  the unit's sound does: attack, die, walk, ...), held out by unit.
- Files are deduplicated by content (games copy one ambience into several folders) and symlinks skipped.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..audio import is_audio_path
from ..fsio import atomic_write
from .sources import Item, held_out

MUSIC_HOLDOUT_PERCENT = 20
SFX_HOLDOUT_PERCENT = 30
TRACK_SEGMENTS = 99  # a training track keeps (almost) all of itself: up to 16.5 min
EVAL_TRACK_SEGMENTS = 6
SFX_SEGMENTS = 6


@dataclass(frozen=True)
class Pack:
    """One folder of one package: where its files are and what they are."""

    package: str
    game: str
    root: str  # folder inside the package, or "path/inside/package.zip!prefix/" for a zip member folder
    domain: str  # "music" or "sound"
    include: str = ""  # regex (search) on the path relative to root; empty: every audio file
    exclude: str = ""
    speech: str = ""  # regex: files of a sound pack that are spoken lines (domain "speech")


_G = "usr/share/games"
PACKS: tuple[Pack, ...] = (
    # --- soundtracks
    Pack("wesnoth-1.16-music", "wesnoth", f"{_G}/wesnoth/1.16/data/core/music", "music"),
    Pack("warzone2100-music", "warzone2100", f"{_G}/warzone2100/music", "music"),
    Pack("0ad-data", "0ad", f"{_G}/0ad/mods/public/public.zip!audio/music/", "music"),
    Pack("naev-data", "naev", "usr/share/naev/dat/snd/music", "music"),
    Pack("widelands-data", "widelands", f"{_G}/widelands/data/music", "music"),
    Pack("supertuxkart-data", "supertuxkart", f"{_G}/supertuxkart/data/music", "music"),
    Pack("megaglest-data", "megaglest", f"{_G}/megaglest", "music", include=r"(^|/)music/"),
    Pack("drascula-music", "drascula", "usr/share/scummvm/drascula/audio", "music"),
    Pack("unknown-horizons", "unknown-horizons", "usr/share/unknown-horizons/content/audio/music", "music"),
    Pack("flare-game", "flare", f"{_G}/flare/mods/fantasycore/music", "music"),
    Pack("pushover-data", "pushover", "usr/share/pushover/themes", "music"),
    Pack("openclonk-data", "openclonk", f"{_G}/openclonk/Music.ocg", "music"),
    Pack("redeclipse-data", "redeclipse", f"{_G}/redeclipse/data/sounds/music", "music"),
    Pack("enigma-data", "enigma", f"{_G}/enigma/music", "music"),
    Pack("freecol", "freecol", f"{_G}/freecol/default/resources/music", "music"),
    Pack("freecol", "freecol", f"{_G}/freecol/default/resources/sound/anthem", "music"),
    Pack("btanks-data", "btanks", f"{_G}/btanks/data/tunes", "music"),
    Pack("xmoto-data", "xmoto", f"{_G}/xmoto/Textures/Musics", "music"),
    Pack("frozen-bubble-data", "frozen-bubble", f"{_G}/frozen-bubble/snd", "music", include=r"zik"),
    Pack("extremetuxracer-data", "extremetuxracer", f"{_G}/etr/music", "music"),
    Pack("torcs-data", "torcs", f"{_G}/torcs/data/music", "music"),
    Pack("scorched3d-data", "scorched3d", f"{_G}/scorched3d/data/globalmods/none/data/music", "music"),
    Pack("ufoai-music", "ufoai", f"{_G}/ufoai/base/0music.pk3!music/", "music"),
    Pack("warmux-data", "warmux", f"{_G}/warmux/music", "music"),
    # --- sound effects and ambiences
    Pack("0ad-data", "0ad", f"{_G}/0ad/mods/public/public.zip!audio/", "sound", exclude=r"^music/",
         speech=r"^voice/"),
    Pack("megaglest-data", "megaglest", f"{_G}/megaglest", "sound", exclude=r"(^|/)music/",
         speech=r"_(ack|select)\d*\.\w+$"),
    Pack("redeclipse-data", "redeclipse", f"{_G}/redeclipse/data", "sound", exclude=r"^sounds/music/",
         speech=r"announcer|(^|/)voice/"),
    Pack("supertuxkart-data", "supertuxkart", f"{_G}/supertuxkart/data", "sound", exclude=r"^music/"),
    Pack("nexuiz-data", "nexuiz", f"{_G}/nexuiz/data/data.pk3!sound/", "sound",
         speech=r"announcer|/coms/|^tutorial/"),
    Pack("openarena-data", "openarena", f"{_G}/openarena/baseoa/pak0.pk3!sound/", "sound",
         speech=r"announcer|^voices/|^feedback/"),
    Pack("openarena-data", "openarena", f"{_G}/openarena/missionpack/mp-pak0.pk3!sound/", "sound",
         speech=r"announcer|^voices/|^feedback/"),
    Pack("warzone2100-data", "warzone2100", f"{_G}/warzone2100/base.wz!audio/", "sound",
         speech=r"^(?!sfx/)"),
    Pack("wesnoth-1.16-data", "wesnoth", f"{_G}/wesnoth/1.16", "sound"),
    Pack("widelands-data", "widelands", f"{_G}/widelands/data", "sound", exclude=r"^music/"),
    Pack("naev-data", "naev", "usr/share/naev/dat/snd/sounds", "sound"),
    Pack("freeorion-data", "freeorion", f"{_G}/freeorion/default/data/sound", "sound",
         exclude=r"artificial_intelligence"),
    Pack("endless-sky-data", "endless-sky", f"{_G}/endless-sky/sounds", "sound"),
    Pack("lugaru-data", "lugaru", f"{_G}/lugaru/Sounds", "sound"),
    Pack("flare-game", "flare", f"{_G}/flare/mods", "sound", include=r"/soundfx/"),
    Pack("unknown-horizons", "unknown-horizons", "usr/share/unknown-horizons/content/audio", "sound",
         exclude=r"^music/", speech=r"^voice/"),
    Pack("freecol", "freecol", f"{_G}/freecol", "sound", include=r"/resources/sound/", exclude=r"/anthem/"),
    Pack("scorched3d-data", "scorched3d", f"{_G}/scorched3d/data/globalmods", "sound", include=r"/wav/"),
    Pack("btanks-data", "btanks", f"{_G}/btanks/data/sounds", "sound"),
    Pack("tuxfootball", "tuxfootball", f"{_G}/tuxfootball/sound", "sound"),
    Pack("torcs-data", "torcs", f"{_G}/torcs/data/sound", "sound"),
    Pack("trigger-rally-data", "trigger-rally", f"{_G}/trigger-rally/data.zip!sounds/", "sound",
         speech=r"^codriver/"),
    Pack("enigma-data", "enigma", f"{_G}/enigma/soundsets", "sound"),
    Pack("tuxtype-data", "tuxtype", "usr/share/tuxtype", "sound"),
    Pack("frozen-bubble-data", "frozen-bubble", f"{_G}/frozen-bubble/snd", "sound", exclude=r"zik"),
    Pack("extremetuxracer-data", "extremetuxracer", f"{_G}/etr/sounds", "sound"),
    Pack("cube2-data", "sauerbraten", f"{_G}/cube2/packages/sounds", "sound", exclude=r"^0ad/"),
    Pack("ufoai-sound", "ufoai", f"{_G}/ufoai/base/0snd.pk3!sound/", "sound"),
    Pack("warmux-data", "warmux", f"{_G}/warmux/sound", "sound", speech=r"/voices/"),
    Pack("minetest-data", "minetest", "usr/share/games/minetest", "sound"),
    Pack("bzflag-data", "bzflag", f"{_G}/bzflag", "sound"),
    Pack("pokerth-data", "pokerth", f"{_G}/pokerth/sounds", "sound"),
    Pack("pingus-data", "pingus", f"{_G}/pingus/data/sounds", "sound"),
    Pack("openttd-opensfx", "openttd", f"{_G}/openttd/baseset/opensfx/opensfx.cat!", "sound"),
)
PACKAGES = tuple(dict.fromkeys(p.package for p in PACKS))


def extract_archive(archive: Path, prefix: str, dest: Path) -> Path:
    """Unzip the audio files under ``prefix`` of ``archive`` into ``dest`` (once); return ``dest``.

    Members are written in name order; a stamp names the archive's size, so a changed archive is redone.
    """
    stamp = dest / ".extracted"
    key = f"{archive.name} {archive.stat().st_size} {prefix}"
    if stamp.exists() and stamp.read_text() == key:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as z:
        for name in sorted(z.namelist()):
            if not name.startswith(prefix) or name.endswith("/") or not is_audio_path(name):
                continue
            rel = name[len(prefix):]
            if ".." in Path(rel).parts:
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(out, z.read(name))
    atomic_write(stamp, key)
    return dest


def extract_cat(archive: Path, dest: Path) -> Path:
    """Write the WAV entries of an OpenTTD sound archive (``.cat``) as ``dest/NN-<name>.wav`` (once).

    The file starts with (offset, size) uint32 pairs (offsets flagged with the top bit); each entry is a
    length-prefixed name followed by a RIFF WAV file. Empty entries are skipped.
    """
    stamp = dest / ".extracted"
    key = f"{archive.name} {archive.stat().st_size}"
    if stamp.exists() and stamp.read_text() == key:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    data = archive.read_bytes()
    n = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    for i in range(n):
        off, size = struct.unpack_from("<II", data, 8 * i)
        off &= 0x7FFFFFFF
        name_len = data[off]
        wav = data[off + 1 + name_len:off + size]
        if wav[:4] != b"RIFF":
            continue
        title = data[off + 1:off + 1 + name_len].decode("latin-1").split(".")[0].strip('" ')
        atomic_write(dest / f"{i:02d}-{re.sub(r'[^A-Za-z0-9]+', '_', title).strip('_').lower()[:40]}.wav", wav)
    atomic_write(stamp, key)
    return dest


def pack_files(pkgs: Path, pack: Pack, cache: Path) -> list[tuple[Path, str, str]]:
    """(file, path relative to the pack's folder, provenance "<package>/<path>") for a pack, sorted.

    Symlinks are skipped, so a package that links the same track into several folders counts it once.
    """
    if "!" in pack.root:
        archive_rel, prefix = pack.root.split("!", 1)
        archive = pkgs / pack.package / archive_rel
        if not archive.exists():
            return []
        dest = cache / "archives" / pack.package / archive_rel / prefix
        root = extract_cat(archive, dest) if archive.suffix == ".cat" else extract_archive(archive, prefix, dest)
        base = f"{pack.package}/{archive_rel}/{prefix}"
    else:
        root = pkgs / pack.package / pack.root
        base = f"{pack.package}/{pack.root}/"
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.rglob("*"), key=lambda q: str(q)):
        if p.is_symlink() or not p.is_file() or not is_audio_path(p):
            continue
        rel = p.relative_to(root).as_posix()
        if pack.include and not re.search(pack.include, rel):
            continue
        if pack.exclude and re.search(pack.exclude, rel):
            continue
        out.append((p, rel, base.rstrip("/") + "/" + rel))
    return out


def _stem(rel: str) -> str:
    """A sound's name without its variant number: ``impact/sword_hit_3.ogg`` -> ``impact/sword_hit``."""
    return re.sub(r"[_ -]?\d+$", "", rel.rsplit(".", 1)[0]).lower()


_MEGAGLEST_ACTION = re.compile(r"^(?P<unit>.+?)_(?P<action>[a-z]+?)_?\d*$")


def _sound_item(pack: Pack, p: Path, rel: str, prov: str) -> Item:
    spoken = bool(pack.speech and re.search(pack.speech, rel))
    parts = rel.split("/")
    labels = {"domain": "speech" if spoken else "sound", "game": pack.game,
              "category": "/".join(parts[:-1]) or "misc"}
    it = Item(pack.game, p, prov, group=f"{pack.game}/{_stem(rel)}", labels=labels, max_segments=SFX_SEGMENTS)
    if spoken:
        return it
    if pack.package == "0ad-data" and len(parts) >= 3:
        it.labels["sfx_category"] = f"{parts[0]}/{parts[1]}"  # held out per category by hold_out_per_class
    elif pack.package == "megaglest-data" and "/units/" in f"/{rel}":
        unit = parts[parts.index("units") + 1]
        m = _MEGAGLEST_ACTION.match(Path(rel).stem.lower())
        it.group = f"megaglest/unit/{unit}"
        if held_out(unit, SFX_HOLDOUT_PERCENT, "megaglest-units"):
            it.split = "eval"
            if m and m.group("unit") == unit:
                it.tasks = ("sound-action",)
                it.labels["action"] = m.group("action")
    return it


def _music_item(pack: Pack, p: Path, rel: str, prov: str) -> Item:
    track = rel.rsplit(".", 1)[0]
    return Item(f"music-{pack.game}", p, prov, group=f"{pack.game}/{track}",
                labels={"domain": "music", "game": pack.game, "track": track}, max_segments=TRACK_SEGMENTS)


def hold_out_per_class(items: list[Item], domain: str, label: str, task: str, percent: int, salt: str,
                       min_groups: int = 5) -> None:
    """Hold out whole groups, class by class, for ``task`` (in place), among the items of one domain.

    For every class (value of ``labels[label]``) with at least ``min_groups`` groups, the groups with the
    lowest salted CRC-32 are held out: ``percent`` % of them, at least 2, so that the grouped probe sees
    every class in two or more groups and training keeps the rest. Classes with fewer groups stay in
    training whole.
    """
    groups: dict[str, set[str]] = {}
    mine = [it for it in items if it.labels.get("domain") == domain and label in it.labels]
    for it in mine:
        if it.split == "train":
            groups.setdefault(str(it.labels[label]), set()).add(it.group)
    chosen: set[str] = set()
    for gs in groups.values():
        if len(gs) >= min_groups:
            k = max(2, round(len(gs) * percent / 100))
            chosen.update(sorted(gs, key=lambda g: (zlib.crc32(f"{salt}:{g}".encode()), g))[:k])
    for it in mine:
        if it.group in chosen:
            it.split, it.tasks = "eval", (task,)
            if domain == "music":
                it.max_segments = EVAL_TRACK_SEGMENTS


def prune_single_group_classes(items: list[Item], task: str, label: str) -> None:
    """Drop ``task`` from held-out items whose class has only one group (they stay held out)."""
    groups: dict[str, set[str]] = {}
    for it in items:
        if task in it.tasks:
            groups.setdefault(str(it.labels.get(label)), set()).add(it.group)
    for it in items:
        if task in it.tasks and len(groups[str(it.labels.get(label))]) < 2:
            it.tasks = tuple(t for t in it.tasks if t != task)


def v2_recorded_items(pkgs: Path, cache: Path, packs: tuple[Pack, ...] = PACKS) -> list[Item]:
    """Corpus v2's added recorded items, in the order of :data:`PACKS`, each pack's files sorted."""
    items: list[Item] = []
    seen: set[str] = set()
    for pack in packs:
        make = _music_item if pack.domain == "music" else _sound_item
        for p, rel, prov in pack_files(pkgs, pack, cache):
            digest = hashlib.sha1(p.read_bytes()).hexdigest()
            if prov in seen or digest in seen:  # the same file copied into several folders counts once
                continue
            seen.update((prov, digest))
            items.append(make(pack, p, rel, prov))
    hold_out_per_class(items, "music", "game", "music-game", MUSIC_HOLDOUT_PERCENT, "music-track")
    hold_out_per_class(items, "sound", "sfx_category", "sound-0ad", SFX_HOLDOUT_PERCENT, "0ad-sfx")
    prune_single_group_classes(items, "sound-action", "action")
    return items
