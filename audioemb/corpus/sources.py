"""The corpus's recorded sources: which files of each Debian package are used, their labels and splits.

Each function takes the folder where the packages were unpacked and returns :class:`Item` s. Splits are
made by *group* (speaker, phrase, stamp, syllable, sample), never by clip, with a stable hash, so the
same voice, phrase or instrument sample never lands on both sides. Held-out items carry the evaluation
task(s) they belong to.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..audio import is_audio_path


@dataclass
class Item:
    """One source file to decode: where it is, what it is, and which side of the split it falls on."""

    source: str
    orig: Path
    rel: str  # "<package>/<path inside the package>", kept in the manifest for provenance
    group: str
    labels: dict = field(default_factory=dict)
    split: str = "train"
    tasks: tuple[str, ...] = ()
    max_segments: int = 1  # how many 10-s segments of a long file are kept


def held_out(group: str, percent: int, salt: str) -> bool:
    """Stable, platform-independent choice of held-out groups (CRC-32 of salt and group)."""
    return zlib.crc32(f"{salt}:{group}".encode()) % 100 < percent


def _files(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*") if p.is_file() and is_audio_path(p)), key=lambda p: str(p))


def _rel(pkgs: Path, p: Path) -> str:
    return p.relative_to(pkgs).as_posix()


def fillets(pkgs: Path) -> list[Item]:
    """Fish Fillets voice acting: 2 speakers per language (cs, nl); all used for training."""
    items = []
    for lang in ("cs", "nl"):
        root = pkgs / f"fillets-ng-data-{lang}" / "usr/share/games/fillets-ng/sound"
        for p in _files(root):
            level = p.relative_to(root).parts[0]
            m = re.match(r"^[^-]+-([mv])-", p.name)
            labels = {"language": lang, "level": level}
            if m:
                labels["speaker"] = f"{lang}-{m.group(1)}"
            items.append(Item("fillets", p, _rel(pkgs, p), group=f"{lang}/{level}", labels=labels))
    return items


_TUX_DESC = re.compile(r"^(?P<stamp>.+)_desc(?:_(?P<lang>[a-z]{2,3}(?:_[A-Z]{2})?))?\.ogg(?:\.ogg)?$")
_TUX_SPOKEN = re.compile(r"^.+_[a-z]{2,3}(?:_[A-Z]{2})?\.ogg$")


def tuxpaint(pkgs: Path, min_lang_clips: int = 250) -> list[Item]:
    """Tux Paint stamps: spoken descriptions in 13 languages, plus animal and object sound effects.

    Held out: 20 % of stamps' descriptions (task ``speech-language``, languages with enough clips) and
    40 % of the bird and mammal sounds (task ``sound-category``).
    """
    root = pkgs / "tuxpaint-stamps-default" / "usr/share/tuxpaint/stamps"
    items = []
    for p in _files(root):
        parts = p.relative_to(root).parts
        category = parts[0]
        m = _TUX_DESC.match(p.name)
        if m:
            stamp = "/".join([*parts[:-1], m.group("stamp")])
            lang = m.group("lang") or "en"
            items.append(Item("tuxpaint", p, _rel(pkgs, p), group=stamp,
                              labels={"language": lang, "category": category, "kind": "description"}))
        elif _TUX_SPOKEN.match(p.name):
            items.append(Item("tuxpaint", p, _rel(pkgs, p), group="/".join(parts[:-1]),
                              labels={"category": category, "kind": "spoken-symbol"}))
        else:
            sub = parts[1] if len(parts) > 2 else category
            stamp = "/".join(parts)[: -len(p.suffix)]
            items.append(Item("tuxpaint", p, _rel(pkgs, p), group=stamp,
                              labels={"category": category, "subcategory": sub, "kind": "effect"}))
    langs = Counter(it.labels["language"] for it in items if it.labels.get("kind") == "description")
    for it in items:
        kind = it.labels.get("kind")
        if kind == "description" and held_out(it.group, 20, "tuxpaint"):
            it.split = "eval"
            if langs[it.labels["language"]] >= min_lang_clips:
                it.tasks = ("speech-language",)
        elif kind == "effect" and it.labels["category"] == "animals" and it.labels["subcategory"] in (
            "birds", "mammals"
        ) and held_out(it.group, 40, "tuxpaint-sfx"):
            it.split = "eval"
            it.labels["sound_category"] = f"animal-{it.labels['subcategory']}"
            it.tasks = ("sound-category",)
    return items


def klettres(pkgs: Path) -> list[Item]:
    """KLettres: letter names and syllables in 20 languages; all used for training."""
    root = pkgs / "klettres-data" / "usr/share/klettres"
    items = []
    for p in _files(root):
        parts = p.relative_to(root).parts
        lang, kind = parts[0], parts[1] if len(parts) > 2 else "other"
        items.append(Item("klettres", p, _rel(pkgs, p), group=f"{lang}/{kind}",
                          labels={"language": lang, "kind": kind, "text": p.stem}))
    return items


def ktuberling(pkgs: Path) -> list[Item]:
    """KTuberling: about 72 object words in 26 languages (words from the .soundtheme files)."""
    root = pkgs / "ktuberling-data" / "usr/share/ktuberling/sounds"
    word_of: dict[str, str] = {}
    for theme in sorted(root.glob("*.soundtheme")):
        try:
            for s in ET.parse(theme).getroot().iter("sound"):
                word_of[s.get("file", "")] = s.get("name", "")
        except ET.ParseError:
            continue
    items = []
    for p in _files(root):
        rel = p.relative_to(root).as_posix()
        lang = p.relative_to(root).parts[0]
        labels = {"language": lang}
        if rel in word_of:
            labels["word"] = word_of[rel]
        items.append(Item("ktuberling", p, _rel(pkgs, p), group=lang, labels=labels))
    return items


def hedgewars(pkgs: Path) -> list[Item]:
    """Hedgewars: 15 voice packs speaking about 60 shared phrases, plus game sounds.

    40 % of phrases are held out (task ``speech-speaker``: which voice pack speaks).
    """
    root = pkgs / "hedgewars-data" / "usr/share/games/hedgewars/Data/Sounds"
    items = []
    for p in _files(root):
        parts = p.relative_to(root).parts
        if parts[0] == "voices" and len(parts) == 3:
            phrase = re.sub(r"\d+$", "", p.stem).lower()
            it = Item("hedgewars", p, _rel(pkgs, p), group=phrase,
                      labels={"speaker": parts[1], "phrase": phrase})
            if held_out(phrase, 40, "hedgewars"):
                it.split, it.tasks = "eval", ("speech-speaker",)
        else:
            it = Item("hedgewars", p, _rel(pkgs, p), group="sfx/" + "/".join(parts[:-1]),
                      labels={"category": "game-sound"}, max_segments=3)
        items.append(it)
    return items


def gcin(pkgs: Path) -> list[Item]:
    """gcin-voice: Mandarin syllables by 2 speakers; 20 % of syllables held out (task ``speech-tone``)."""
    root = pkgs / "gcin-voice" / "usr/share/gcin-voice/ogg"
    items = []
    for p in _files(root):
        folder = p.parent.name
        m = re.match(r"^(.*?)([1-5])?$", folder)
        syllable, tone = m.group(1), m.group(2)
        labels = {"syllable": syllable, "speaker": p.stem}
        if tone:
            labels["tone"] = tone
        it = Item("gcin", p, _rel(pkgs, p), group=syllable, labels=labels)
        if held_out(syllable, 20, "gcin"):
            it.split = "eval"
            if tone:
                it.tasks = ("speech-tone",)
        items.append(it)
    return items


def sonic_pi(pkgs: Path) -> list[Item]:
    """Sonic Pi samples: 14 categories by name prefix; half of the samples held out (``sound-category``)."""
    root = pkgs / "sonic-pi-samples" / "usr/share/sonic-pi/samples"
    items = []
    for p in _files(root):
        cat = p.stem.split("_")[0]
        it = Item("sonic-pi", p, _rel(pkgs, p), group=p.stem, labels={"category": cat})
        if held_out(p.stem, 50, "sonic-pi"):
            it.split = "eval"
            it.labels["sound_category"] = cat
            it.tasks = ("sound-category",)
        items.append(it)
    return items


SFX_PACKAGES = {
    "supertux-data": "usr/share/games/supertux2",
    "freedroidrpg-data": "usr/share/freedroidrpg/data/sound",
    "lincity-ng-data": "usr/share/games/lincity-ng/sounds",
    "colobot-common-sounds": "usr/share/games/colobot",
    "sound-theme-freedesktop": "usr/share/sounds/freedesktop",
    "oxygen-sounds": "usr/share/sounds",
}


def sound_effects(pkgs: Path) -> list[Item]:
    """Game and desktop sound effects and music; all used for training (music tracks: up to 60 s)."""
    items = []
    for pkg, sub in SFX_PACKAGES.items():
        root = pkgs / pkg / sub
        for p in _files(root):
            folder = p.parent.name
            music = "music" in p.relative_to(root).parts or folder in {"antarctic", "castle", "forest",
                                                                        "retro", "tropical", "misc"}
            items.append(Item(pkg.split("-")[0], p, _rel(pkgs, p), group=f"{pkg}/{folder}",
                              labels={"category": "music" if music else folder},
                              max_segments=6 if music else 2))
    return items


RECORDED_SOURCES = (fillets, tuxpaint, klettres, ktuberling, hedgewars, gcin, sonic_pi, sound_effects)


def recorded_items(pkgs: Path) -> list[Item]:
    """Every recorded (not synthesised) item of the corpus, in a fixed order."""
    out: list[Item] = []
    for fn in RECORDED_SOURCES:
        out.extend(fn(pkgs))
    return out
