"""Training throughput (views/s) of each recipe, before and after the throughput work, in one run.

Each variant trains a fresh run for ``--steps`` steps on the corpus and reads views/s from the run's
log over the second half (the first half holds start-up and warm-up). Variants, run interleaved:

- ``before``: one process, 2 threads, NCHW convolutions (the trainer's settings until this change);
- ``channels_last``: one process, 2 threads, NHWC convolutions;
- ``ddp 2x1``: two processes of one thread each (torchrun, gloo), NHWC: what the long runs use;
- with ``--precision``: the ``before`` variant in fp32 and bf16, to compare the two on this CPU;
- with ``--baseline-src DIR``: ``ddp 2x1`` again with the package imported from DIR (a checkout of an
  earlier commit, e.g. ``git worktree add /tmp/base HEAD~1``), to time a code change in the same run;
- with ``--issue-src DIR``: the trainer as it was when issue 11 was filed (a checkout of e8184c2, the
  commit before the throughput work), run with its own defaults (one process, 2 threads, bf16, NCHW,
  views drawn clip by clip), and again in fp32 (on a CPU without native bfloat16 its bf16 default is emulated,
  and fp32 is its faster setting), beside ``ddp 2x1`` of this code (precision ``auto``): the 3x target's
  "today" is the faster of the two.

    python benchmarks/train_speed.py --corpus /work/corpus --recipes byol-s npc-s --steps 40
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VARIANTS = {
    "before": (1, ["threads=2", "channels_last=false"]),
    "channels_last": (1, ["threads=2", "channels_last=true"]),
    "ddp 2x1": (2, ["threads=1", "channels_last=true"]),
}


def run(recipe: str, corpus: Path, procs: int, sets: list[str], steps: int, batch: int | None,
        src: Path | None = None) -> float:
    """views/s of ``steps`` steps of ``recipe`` (per-process batch from the recipe unless ``batch``), with the
    package imported from ``src`` when given."""
    env = None
    if src:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    out = Path(tempfile.mkdtemp(prefix="train_speed-"))
    try:
        half = max(1, steps // 2)
        sets = [*sets, f"steps={2 * half}", f"log_every={half}", f"ckpt_every={10 * steps}", "warmup_steps=1"]
        if batch:
            sets.append(f"batch_size={batch // procs}")
        args = [recipe, "--corpus", str(corpus), "--out", str(out / "run")] + [a for s in sets for a in ("--set", s)]
        if procs == 1:
            cmd = [sys.executable, "-m", "audioemb.train", *args]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
                   "-m", "audioemb.train", *args]
        subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=src)
        recs = [json.loads(line) for line in (out / "run" / "log.jsonl").read_text().splitlines()]
        return float(recs[-1]["views_per_s"])
    finally:
        shutil.rmtree(out, ignore_errors=True)


ISSUE_RUN = ("import json, sys\n"
             "from audioemb.train.recipes import load_recipe\n"
             "from audioemb.train.trainer import Trainer\n"
             "cfg = load_recipe(sys.argv[1], sys.argv[4:])\n"
             "t = Trainer(cfg, sys.argv[2], sys.argv[3], log=lambda *a: None)\n"
             "t.fit()\n"
             "print(json.dumps({'views_per_step': cfg.batch_size * t.objective.n_crops}))\n")


def run_issue_code(recipe: str, corpus: Path, steps: int, src: Path, extra: tuple[str, ...] = ()) -> float:
    """views/s of the trainer of ``src`` (the code of e8184c2, which logs ``wall_s`` but not views/s), over
    the second half of ``steps`` steps, with the settings ``extra`` (``key=value``) added."""
    out = Path(tempfile.mkdtemp(prefix="train_speed-"))
    try:
        half = max(1, steps // 2)
        sets = [*extra, f"steps={2 * half}", f"log_every={half}", f"ckpt_every={10 * steps}", "warmup_steps=1"]
        env = {**os.environ, "PYTHONPATH": str(src)}
        res = subprocess.run([sys.executable, "-c", ISSUE_RUN, recipe, str(corpus.resolve()), str(out / "run"), *sets],
                             check=True, capture_output=True, text=True, env=env, cwd=src)
        per_step = json.loads(res.stdout.strip().splitlines()[-1])["views_per_step"]
        a, b = [json.loads(line) for line in (out / "run" / "log.jsonl").read_text().splitlines()][-2:]
        return per_step * (b["step"] - a["step"]) / (b["wall_s"] - a["wall_s"])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--recipes", nargs="*", default=None, help="default: every recipe")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=None, help="global batch for every variant (default: recipe's)")
    ap.add_argument("--precision", action="store_true", help="also compare fp32 and bf16 autocast")
    ap.add_argument("--baseline-src", type=Path, default=None, help="also time ddp 2x1 with the code of this checkout")
    ap.add_argument("--issue-src", type=Path, default=None, help="a checkout of e8184c2: the trainer issue 11 measured")
    ap.add_argument("--repeat", type=int, default=1, help="--issue-src runs, interleaved; the best of each counts")
    ap.add_argument("--issue-fp32-only", action="store_true",
                    help="skip the issue-time trainer's bf16 default (on a CPU that emulates bf16 it is the slower "
                         "setting by far, and takes minutes per run)")
    args = ap.parse_args()
    from audioemb.train.config import native_bf16
    from audioemb.train.recipes import list_recipes

    recipes = args.recipes or list_recipes()
    print(f"views/s, {args.steps} steps per variant, corpus {args.corpus}; "
          f"this CPU computes bfloat16 {'natively' if native_bf16('cpu') else 'by emulation'}")
    if args.issue_src:
        src = args.issue_src.resolve()
        print(f"| recipe | issue-time trainer ({src}), its defaults (bf16) | the same, fp32 | ddp 2x1, this code | "
              "this / the faster of those |\n|---|---|---|---|---|")
        procs, sets = VARIANTS["ddp 2x1"]
        for r in recipes:
            bf16 = fp32 = now = 0.0
            for _ in range(args.repeat):
                if not args.issue_fp32_only:
                    bf16 = max(bf16, run_issue_code(r, args.corpus, args.steps, src))
                fp32 = max(fp32, run_issue_code(r, args.corpus, args.steps, src, ("precision=fp32",)))
                now = max(now, run(r, args.corpus, procs, sets, args.steps, args.batch))
            shown = f"{bf16:.0f}" if bf16 else "not run"
            print(f"| {r} | {shown} | {fp32:.0f} | {now:.0f} | {now / max(bf16, fp32):.2f}x |", flush=True)
        return
    print("| recipe | before | channels_last | ddp 2x1 | after / before |")
    print("|---|---|---|---|---|")
    for r in recipes:
        res = {name: run(r, args.corpus, procs, sets, args.steps, args.batch)
               for name, (procs, sets) in VARIANTS.items()}
        best = max(res["channels_last"], res["ddp 2x1"])
        print(f"| {r} | {res['before']:.0f} | {res['channels_last']:.0f} | {res['ddp 2x1']:.0f} | "
              f"{best / res['before']:.2f}x |", flush=True)
    if args.baseline_src:
        src = args.baseline_src.resolve()
        print(f"\n| recipe | ddp 2x1, code of {src} | ddp 2x1, this code | this / that |\n|---|---|---|---|")
        procs, sets = VARIANTS["ddp 2x1"]
        for r in recipes:
            base = run(r, args.corpus, procs, sets, args.steps, args.batch, src)
            now = run(r, args.corpus, procs, sets, args.steps, args.batch)
            print(f"| {r} | {base:.0f} | {now:.0f} | {now / base:.2f}x |", flush=True)
    if args.precision:
        print("\n| recipe | fp32 | bf16 | bf16 / fp32 |\n|---|---|---|---|")
        for r in recipes:
            fp32 = run(r, args.corpus, 1, ["threads=2", "precision=fp32"], args.steps, args.batch)
            bf16 = run(r, args.corpus, 1, ["threads=2", "precision=bf16"], args.steps, args.batch)
            print(f"| {r} | {fp32:.0f} | {bf16:.0f} | {bf16 / fp32:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
