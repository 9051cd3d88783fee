"""Which domain (speech, music or sound) a corpus clip belongs to, and the hours of each.

Corpus v2's own rows carry ``labels["domain"]``. Version 1's rows predate that label (and stay byte for
byte as they were), so their domain follows from their source and labels here.
"""

from __future__ import annotations

from collections import defaultdict

DOMAINS = ("speech", "music", "sound")
_SPEECH_SOURCES = {"espeak", "fillets", "klettres", "ktuberling", "gcin", "festival"}
_SONIC_PI_SOUND = {"ambi", "misc", "vinyl"}  # Sonic Pi's non-instrument categories


def domain_of(row: dict) -> str:
    """``speech``, ``music`` or ``sound`` for one manifest row."""
    labels = row.get("labels", {})
    if labels.get("domain") in DOMAINS:
        return labels["domain"]
    src = row["source"]
    if src in _SPEECH_SOURCES:
        return "speech"
    if src.startswith(("fluidsynth", "music-")):
        return "music"
    if src == "tuxpaint":
        return "sound" if labels.get("kind") == "effect" else "speech"
    if src == "hedgewars":
        return "speech" if "speaker" in labels else "sound"
    if src == "sonic-pi":
        return "sound" if labels.get("category") in _SONIC_PI_SOUND else "music"
    return "music" if labels.get("category") == "music" else "sound"


def domain_hours(rows: list[dict], split: str = "train") -> dict[str, dict]:
    """{domain: {"hours", "share", "clips", "clip_share"}} over the rows of one split.

    Both shares matter: hours measure the audio, but a trainer that draws clips uniformly (as
    ``audioemb train`` does) sees each domain in proportion to its clips.
    """
    hours: dict[str, float] = defaultdict(float)
    clips: dict[str, int] = defaultdict(int)
    for r in rows:
        if r["split"] == split:
            hours[domain_of(r)] += r["duration_s"] / 3600
            clips[domain_of(r)] += 1
    total, n = sum(hours.values()) or 1.0, sum(clips.values()) or 1
    return {d: {"hours": round(hours[d], 3), "share": round(hours[d] / total, 3), "clips": clips[d],
                "clip_share": round(clips[d] / n, 3)} for d in DOMAINS}
