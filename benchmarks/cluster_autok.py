"""Automatic k on labelled collections: which criterion and range find the obvious groups.

    python benchmarks/cluster_autok.py [--corpus corpus]

Embeds labelled sets with the default model: ``synthetic-8`` (8 kinds of generated sound, 13 clips each:
tones, chirps, noise, clicks, ...) and, with a corpus, ``sources-8`` (13 clips from each of 8 Debian sources),
``sound-category``, ``speech-speaker`` and ``music-family`` (25 per family) from its held-out tasks. For each,
k-means with the true k, and automatic k by silhouette, Calinski-Harabasz and Davies-Bouldin, both over the
old range (2..30, no floor) and the default one (:func:`audioemb.cluster.default_k_range` with
:func:`audioemb.cluster.choose_k`). Prints a markdown table of chosen k and NMI against the labels.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table

KINDS = ("lowtone", "hightone", "noise", "clicks", "chirp", "square", "am", "lpnoise")


def synthetic(folder: Path, per: int = 13, sr: int = 16000, seed: int = 0) -> list[tuple[str, str]]:
    """8 obvious kinds of sound, ``per`` clips each, with jittered pitch, rate, length and level."""
    rng = np.random.default_rng(seed)
    out = []
    for kind in KINDS:
        for i in range(per):
            d = rng.uniform(1.0, 3.0)
            t = np.arange(int(d * sr)) / sr

            def f(base: float) -> float:
                return base * rng.uniform(0.9, 1.1)

            if kind == "lowtone":
                x = np.sin(2 * np.pi * f(150) * t)
            elif kind == "hightone":
                x = np.sin(2 * np.pi * f(3000) * t)
            elif kind == "noise":
                x = rng.standard_normal(len(t))
            elif kind == "clicks":
                x = np.zeros(len(t))
                x[::int(sr / f(8))] = 1.0
            elif kind == "chirp":
                x = np.sin(2 * np.pi * (f(200) * t + (f(4000) - 200) / (2 * d) * t**2))
            elif kind == "square":
                x = np.sign(np.sin(2 * np.pi * f(440) * t))
            elif kind == "am":
                x = np.sin(2 * np.pi * f(1000) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * f(4) * t))
            else:
                x = np.convolve(rng.standard_normal(len(t)), np.ones(40) / 40, "same")
            p = folder / f"{kind}_{i:02d}.wav"
            sf.write(p, (x * rng.uniform(0.3, 0.9) / max(np.abs(x).max(), 1e-6)).astype(np.float32), sr)
            out.append((str(p), kind))
    return out


def corpus_sets(corpus: Path, seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    rng = random.Random(seed)
    by = collections.defaultdict(list)
    for line in open(corpus / "manifest.jsonl"):
        m = json.loads(line)
        by[m["source"]].append(m["path"])
    sets = {"sources-8": [(str(corpus / p), s) for s in ("espeak", "fluidsynth", "gcin", "sonic-pi", "tuxpaint",
                                                          "hedgewars", "oxygen", "klettres")
                          for p in rng.sample(sorted(by[s]), 13)]}
    for task, per in (("sound-category", None), ("speech-speaker", None), ("music-family", 25)):
        g = collections.defaultdict(list)
        for r in csv.DictReader(open(corpus / "tasks" / f"{task}.csv")):
            g[r["label"]].append(str((corpus / "tasks" / r["path"]).resolve()))
        sets[task] = [(p, lab) for lab, ps in sorted(g.items()) for p in (rng.sample(ps, min(per, len(ps)))
                                                                           if per else ps)]
    return sets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=None)
    args = ap.parse_args()
    import audioemb
    from audioemb.cluster import CRITERIA, cluster_scores, default_k_range, kmeans

    model = audioemb.load()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"synthetic-8": synthetic(Path(tmp))}
        if args.corpus:
            sets.update(corpus_sets(args.corpus))
        for name, items in sets.items():
            x = model.encode([p for p, _ in items])
            y = [lab for _, lab in items]
            true_k = len(set(y))
            row = [name, len(y), true_k, f"{cluster_scores(y, kmeans(x, true_k).labels)['nmi']:.3f}"]
            for crit in CRITERIA:
                for k_range in ((2, 30), None):
                    res = kmeans(x, None, k_range=k_range, criterion=crit)
                    row.append(f"{res.k} / {cluster_scores(y, res.labels)['nmi']:.3f}")
            rows.append(row)
            print(name, row, flush=True)
    heads = ["set", "clips", "true k", "NMI at true k"]
    heads += [f"{c} {'2..30' if r else 'default'}: k / NMI" for c in CRITERIA for r in (True, False)]
    print(f"\nmodel {model.name}; default range for 104 clips: floor {default_k_range(104)[0]}, ceiling "
          f"{default_k_range(104)[1]}\n")
    print(table(heads, rows))


if __name__ == "__main__":
    main()
