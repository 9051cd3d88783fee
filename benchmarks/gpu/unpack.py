"""Decode the Opus chunks of ``make_subset.py`` into a corpus folder that ``audioemb train --corpus`` reads.

    python benchmarks/gpu/unpack.py .gpu/corpus /tmp/corpus
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf


def decode(path: str) -> np.ndarray:
    return sf.read(path, dtype="int16")[0]


def main(src: Path, dst: Path) -> None:
    t0 = time.time()
    (dst / "cache").mkdir(parents=True, exist_ok=True)
    idx = json.load(gzip.open(src / "pack-train.json.gz", "rt"))
    shutil.copy(src / "recipe.json", dst / "recipe.json")
    (dst / "manifest.jsonl").write_bytes(gzip.open(src / "manifest.jsonl.gz").read())
    lengths = np.array(idx["lengths"], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    mm = np.lib.format.open_memmap(dst / "cache" / "pack-train.npy", mode="w+", dtype=np.int16,
                                   shape=(int(lengths.sum()),))
    pos = 0
    with ProcessPoolExecutor(16) as ex:
        for chunk, x in zip(idx["chunks"], ex.map(decode, [str(src / c["file"]) for c in idx["chunks"]])):
            if len(x) != chunk["samples"]:
                raise SystemExit(f"{chunk['file']}: {len(x)} samples decoded, {chunk['samples']} expected")
            mm[pos:pos + len(x)] = x
            pos += len(x)
    assert pos == len(mm), (pos, len(mm))
    mm.flush()
    del mm
    index = {k: idx[k] for k in ("version", "manifest_sha256", "sample_rate", "paths", "lengths")}
    index["offsets"] = offsets.tolist()
    (dst / "cache" / "pack-train.json").write_text(json.dumps(index))
    hours = lengths.sum() / idx["sample_rate"] / 3600
    print(f"unpacked {len(lengths)} clips, {hours:.2f} h in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
