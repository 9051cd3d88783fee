"""Run every benchmark and write docs/benchmarks.md with the machine, versions and date.

    python benchmarks/run_all.py [--quick]

Figures stay as measured; a figure that misses its target says so. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import embed_e2e
import memory
import search
import speed
from common import machine

from audioemb.registry import DEFAULT_MODEL

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = ap.parse_args()
    m = machine()
    q = args.quick
    sections = [
        ("Embedding speed (2 CPU threads, onnxruntime vs torch eager; target: onnxruntime at least as fast)",
         speed.main([] if not q else ["--models", DEFAULT_MODEL])),
        ("End-to-end `audioemb embed` (target: at most 25 % overhead over the model alone)",
         embed_e2e.main(["--files", "100" if q else "1000"])),
        ("Peak memory (should stay flat, not grow with the input)",
         memory.main(["--minutes", "6" if q else "60", "--files", "1000" if q else "10000"])),
        ("Search and k-means", search.main(["--sizes", "10000", "100000"] if q else [])),
    ]
    text = ["# Benchmarks", "", "Measured by `python benchmarks/run_all.py` on:", "", "```json",
            json.dumps(m, indent=1), "```", ""]
    for title, body in sections:
        text += [f"## {title}", "", body, ""]
    DOC.write_text("\n".join(text))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
