"""Corpus v2's festival speech: 13 festival voices (festvox-*) in 7 languages, beside espeak-ng.

Every voice reads the same numbered texts: the English voices a sentence taken from the licence texts in
``/usr/share/common-licenses`` (present on every Debian system), the other voices a number, which their
own text front end reads out in their language. Text *i* is the clip's group; 20 % of the texts are held
out for ``speech-voice`` (which festival voice speaks), so the probe hears each voice say texts that no
training clip says. One festival process per voice renders all of its texts.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..fsio import publish
from .sources import Item, held_out

# festival voice function -> language; English voices read sentences, the others numbers
VOICES = {
    "voice_kal_diphone": "en", "voice_ked_diphone": "en", "voice_cmu_us_slt_arctic_hts": "en",
    "voice_lp_diphone": "it", "voice_pc_diphone": "it", "voice_msu_ru_nsh_clunits": "ru",
    "voice_suo_fi_lj_diphone": "fi", "voice_hy_fi_mv_diphone": "fi", "voice_czech_dita": "cs",
    "voice_czech_krb": "cs", "voice_czech_machac": "cs", "voice_czech_ph": "cs", "voice_upc_ca_ona_hts": "ca",
}
TOOL_PACKAGES = ("festival", "festival-czech", "festival-ca", "festvox-kallpc16k", "festvox-kdlpc16k",
                 "festvox-us-slt-hts", "festvox-italp16k", "festvox-itapc16k", "festvox-ru", "festvox-suopuhe-lj",
                 "festvox-suopuhe-mv", "festvox-czech-dita", "festvox-czech-krb", "festvox-czech-machac",
                 "festvox-czech-ph", "festvox-ca-ona-hts")
LICENCE_TEXTS = ("GPL-3", "Apache-2.0", "GFDL-1.3", "MPL-2.0", "LGPL-3", "Artistic")


def sentences(folder: Path = Path("/usr/share/common-licenses"), min_words: int = 6,
              max_words: int = 20) -> list[str]:
    """Plain sentences of 6-20 words from the licence texts, deduplicated, in file order."""
    out: list[str] = []
    seen: set[str] = set()
    for name in LICENCE_TEXTS:
        path = folder / name
        if not path.exists():
            continue
        text = re.sub(r"\s+", " ", path.read_text(errors="replace"))
        for s in re.split(r"(?<=[.!?])\s+", text):
            s = re.sub(r"[^A-Za-z0-9 ,.;:'()-]", "", s).strip()
            n = len(s.split())
            if min_words <= n <= max_words and s.lower() not in seen and not re.search(r"\d\.\d|http", s):
                seen.add(s.lower())
                out.append(s)
    return out


def texts(n: int, seed: int = 3) -> list[tuple[str, str]]:
    """Up to ``n`` (sentence, number) pairs: text i of an English voice, and of every other voice.

    Never more pairs than there are distinct sentences, so no sentence is in two groups."""
    sents = sentences()
    if not sents:
        raise RuntimeError("no licence texts in /usr/share/common-licenses to read sentences from")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sents))
    numbers = rng.integers(0, 1_000_000, size=n)
    return [(sents[order[i]], str(int(numbers[i]))) for i in range(min(n, len(sents)))]


def _scheme(s: str) -> str:
    return s.replace("\\", " ").replace('"', "'")


def _render_voice(voice: str, jobs: list[tuple[Path, str]]) -> None:
    """Render every (wav, text) of one voice in one festival process; texts it fails on are skipped."""
    todo = [(p, t) for p, t in jobs if not p.exists()]
    if not todo:
        return
    todo[0][0].parent.mkdir(parents=True, exist_ok=True)
    lines = [f"({voice})"]
    for p, t in todo:
        tmp = p.with_suffix(".tmp.wav")
        lines.append(f'(unwind-protect (utt.save.wave (SynthText "{_scheme(t)}") "{tmp}" \'riff) nil)')
    script = todo[0][0].parent / "render.scm"
    script.write_text("\n".join(lines) + "\n")
    subprocess.run(["nice", "-n", "19", "festival", "--batch", str(script)], capture_output=True, check=False)
    for p, _ in todo:
        tmp = p.with_suffix(".tmp.wav")
        if tmp.exists() and tmp.stat().st_size > 44:
            publish(tmp, p)


def festival_items(cache: Path, n_texts: int = 150, workers: int = 2) -> list[Item]:
    """Render ``n_texts`` texts with each of :data:`VOICES`; 20 % of texts held out (``speech-voice``)."""
    out_dir = cache / "synth" / "festival"
    pairs = texts(n_texts)
    plan = {v: [(out_dir / v / f"{i:04d}.wav", pairs[i][0] if lang == "en" else pairs[i][1])
                for i in range(len(pairs))] for v, lang in VOICES.items()}
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(lambda v: _render_voice(v, plan[v]), plan))
    items = []
    for voice, jobs in plan.items():
        name = voice.removeprefix("voice_")
        for i, (p, text) in enumerate(jobs):
            if not p.exists():
                continue
            group = f"text{i:04d}"
            it = Item("festival", p, f"festival/{name}/{p.name}", group=group,
                      labels={"domain": "speech", "voice": name, "language": VOICES[voice], "text": text})
            if held_out(group, 20, "festival"):
                it.split, it.tasks = "eval", ("speech-voice",)
            items.append(it)
    return items
