"""How many views/s a recipe's training step could reach on this CPU at all: its FLOPs against the CPU's peak.

Counts the floating-point work of one training step (forward, backward and any target network) with
``torch.utils.flop_counter.FlopCounterMode``, which counts matrix products and convolutions only (batch
norm, pooling, activations and the optimiser are left out, so the count is a lower bound on the work).
Then measures this CPU's fp32 matrix-product rate on one thread (a large square ``torch.mm``, the best a
convolution can hope for) and prints the ceiling: cores x that rate / FLOPs per view; and the rate of the
recipe's own conv stack alone (forward and backward on one step's views), the ceiling at that rate. The
heap is kept as the trainer keeps it (``keep_heap``, ``audioemb/train/heap.py``) unless ``--no-keep-heap``.
Beside it, the views/s given with ``--measured`` (e.g. the figures of ``benchmarks/train_speed.py``) as a share of the
ceiling, and the throughput target of issue 11 (``--target-x`` times the ``--today`` figure).

    python benchmarks/train_roofline.py --recipe byol-s --today 39 --measured 61
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, machine, table


def step_flops(objective, cfg) -> tuple[float, float, int]:
    """(FLOPs of one training step of ``objective`` at the recipe's batch size and crop length, of them in
    convolutions, views in the step)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from audioemb.objectives.base import Batch

    n = int(cfg.crop_s * objective.frontend.cfg.sample_rate)
    waves = torch.randn(cfg.batch_size, objective.n_crops, n) * 0.1
    batch = Batch(waves, 0, np.arange(cfg.batch_size))
    objective.training_step(batch)  # a first step fills any memory (e.g. the mixup memory)
    with FlopCounterMode(display=False) as counter:
        objective.training_step(batch)["loss"].backward()
    views = cfg.batch_size * objective.n_crops  # as the trainer counts views/s
    by_op = counter.get_flop_counts()["Global"]
    conv = sum(v for op, v in by_op.items() if "convolution" in str(op))
    return float(counter.get_total_flops()), float(conv), views


def gemm_rate(threads: int, size: int = 2048, repeat: int = 5) -> float:
    """Best fp32 FLOP/s of a ``size`` x ``size`` matrix product on ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / best_of(lambda: torch.mm(a, b), repeat)


def conv_rate(objective, views: int, samples: int, threads: int = 1, repeat: int = 3) -> float:
    """FLOP/s of the objective's conv stack alone (``encoder.features``, forward and backward,
    channels-last as the trainer runs it) on ``views`` log-mel views of ``samples``-sample crops: how fast
    this torch's convolution kernels run this network here, with no data path, loss or optimiser around."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(threads)
    features = getattr(objective.encoder, "features", None)
    if features is None:
        raise SystemExit("this recipe's encoder has no conv stack (encoder.features) to time")
    features = features.to(memory_format=torch.channels_last)
    fe = objective.frontend.cfg
    x = torch.randn(views, 1, fe.n_mels, 1 + samples // fe.hop_length).to(memory_format=torch.channels_last)

    def step():
        features.zero_grad(set_to_none=True)
        features(x).sum().backward()

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops()) / best_of(step, repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="byol-s")
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--today", type=float, help="views/s when the target was set (issue 11: the faster setting)")
    ap.add_argument("--target-x", type=float, default=3.0)
    ap.add_argument("--measured", type=float, nargs="*", default=[], help="views/s measured now, to compare")
    ap.add_argument("--no-keep-heap", action="store_true", help="let glibc unmap freed memory (the old trainer)")
    args = ap.parse_args()
    if not args.no_keep_heap:
        from audioemb.train.heap import keep_freed_memory

        keep_freed_memory()
    import torch

    from audioemb.objectives import build_objective
    from audioemb.train.recipes import load_recipe

    cfg = load_recipe(args.recipe)
    torch.manual_seed(0)
    objective = build_objective(cfg, 10 * cfg.batch_size)
    flops, conv_flops, views = step_flops(objective, cfg)
    per_view = flops / views
    one = gemm_rate(1)
    ceiling = args.cores * one / per_view
    conv = conv_rate(objective, views, int(cfg.crop_s * objective.frontend.cfg.sample_rate))
    # convolutions at the conv stack's measured rate, every other product at the matrix-product rate
    conv_ceiling = args.cores * views / (conv_flops / conv + (flops - conv_flops) / one)
    print(machine())
    rows = [["matrix/conv FLOPs per training view (a lower bound)", f"{per_view / 1e9:.3f} GFLOP "
             f"({conv_flops / flops:.0%} in convolutions)"],
            ["fp32 matrix product, 1 thread (2048^3, best of 5)", f"{one / 1e9:.1f} GFLOP/s"],
            [f"ceiling: {args.cores} cores at that rate, nothing else", f"{ceiling:.0f} views/s"],
            ["its conv stack alone, forward + backward, 1 thread", f"{conv / 1e9:.1f} GFLOP/s "
             f"({conv / one:.0%} of the matrix product)"],
            [f"ceiling: convolutions at that rate, the rest at the matrix product's, {args.cores} cores",
             f"{conv_ceiling:.0f} views/s"]]
    for m in args.measured:
        rows.append([f"measured {m:g} views/s", f"{m / ceiling:.0%} of the ceiling, "
                     f"{m / conv_ceiling:.0%} of the conv-rate ceiling"])
    if args.today:
        target = args.target_x * args.today
        rows.append([f"target: {args.target_x:g} x {args.today:g} views/s", f"{target:.0f} views/s = "
                     f"{target / ceiling:.0%} of the ceiling, {target / conv_ceiling:.0%} of the conv-rate ceiling"])
    print(f"\n{args.recipe}: {views} views per step, {flops / 1e9:.1f} GFLOP counted\n")
    print(table(["", args.recipe], rows))


if __name__ == "__main__":
    main()
