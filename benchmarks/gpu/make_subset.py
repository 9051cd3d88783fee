"""Pack a random subset of a corpus's training clips as Opus chunks small enough to travel to a lent GPU machine.

The device tool carries at most 64 MiB, far less than corpus v2's 5 GB pack, so the GPU runs train on a
stratified random fraction of the clips (the same fraction of every source), coded with Opus at about
11 kbit/s (libsndfile compression level 0.98: the 64-mel band energies stay within 2 dB). ``unpack.py``
decodes the chunks back into a corpus folder that ``audioemb train --corpus`` reads.

    python benchmarks/gpu/make_subset.py /work/corpus2 .gpu/corpus --fraction 0.27
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

LEVEL = 0.98


def encode_chunk(pack_path: str, spans: list[tuple[int, int]], out: str, sr: int) -> int:
    """Concatenate ``spans`` of the int16 pack and write them as one Ogg/Opus file; returns the sample count."""
    pack = np.load(pack_path, mmap_mode="r")
    x = np.concatenate([np.asarray(pack[o:o + n]) for o, n in spans])
    sf.write(out, x, sr, format="OGG", subtype="OPUS", compression_level=LEVEL)
    return len(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--fraction", type=float, default=0.27)
    ap.add_argument("--chunk-hours", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    idx = json.loads((a.corpus / "cache" / "pack-train.json").read_text())
    rows = {r["path"]: r for r in map(json.loads, open(a.corpus / "manifest.jsonl")) if r["split"] == "train"}
    rng = np.random.default_rng(a.seed)
    by_source: dict[str, list[int]] = {}
    for i, p in enumerate(idx["paths"]):
        by_source.setdefault(rows[p]["source"], []).append(i)
    keep = sorted(int(i) for ids in by_source.values()
                  for i in rng.choice(ids, size=max(1, round(a.fraction * len(ids))), replace=False))
    sr, offsets, lengths = idx["sample_rate"], idx["offsets"], idx["lengths"]
    chunk_n = int(a.chunk_hours * 3600 * sr)
    chunks, cur, size = [], [], 0
    for i in keep:
        cur.append(i)
        size += lengths[i]
        if size >= chunk_n:
            chunks.append(cur)
            cur, size = [], 0
    if cur:
        chunks.append(cur)
    (a.out / "audio").mkdir(parents=True, exist_ok=True)
    pack_path = str(a.corpus / "cache" / "pack-train.npy")
    with ProcessPoolExecutor(a.workers) as ex:
        futs = [ex.submit(encode_chunk, pack_path, [(offsets[i], lengths[i]) for i in ch],
                          str(a.out / "audio" / f"chunk-{k:03d}.opus"), sr) for k, ch in enumerate(chunks)]
        counts = [f.result() for f in futs]
    manifest = [{k: rows[idx["paths"][i]][k] for k in ("path", "orig", "source", "split", "duration_s")}
                for i in keep]
    text = "".join(json.dumps(r) + "\n" for r in manifest)
    sha = hashlib.sha256(text.encode()).hexdigest()
    with gzip.open(a.out / "manifest.jsonl.gz", "wt") as f:
        f.write(text)
    recipe = json.loads((a.corpus / "recipe.json").read_text())
    recipe.update({"manifest_sha256": sha, "subset": {
        "of_manifest_sha256": recipe["manifest_sha256"], "fraction": a.fraction, "seed": a.seed,
        "clips": len(keep), "hours": round(sum(lengths[i] for i in keep) / sr / 3600, 3),
        "codec": f"Ogg/Opus, libsndfile compression level {LEVEL} (about 11 kbit/s)",
        "why": "the device tool carries at most 64 MiB to a lent GPU machine"}})
    (a.out / "recipe.json").write_text(json.dumps(recipe, indent=1))
    index = {"version": 1, "manifest_sha256": sha, "sample_rate": sr, "paths": [idx["paths"][i] for i in keep],
             "lengths": [lengths[i] for i in keep],
             "chunks": [{"file": f"audio/chunk-{k:03d}.opus", "clips": len(ch), "samples": n}
                        for k, (ch, n) in enumerate(zip(chunks, counts))]}
    with gzip.open(a.out / "pack-train.json.gz", "wt") as f:
        json.dump(index, f)
    mb = sum(p.stat().st_size for p in (a.out / "audio").glob("*.opus")) / 2**20
    print(f"{len(keep)} clips, {recipe['subset']['hours']} h in {len(chunks)} chunks, {mb:.1f} MiB of Opus")


if __name__ == "__main__":
    main()
