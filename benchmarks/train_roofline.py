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
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table


def step_flops(recipe: str) -> tuple[float, float, int]:
    """(FLOPs of one training step of ``recipe`` at its own batch size and crop length, of them in
    convolutions, views in the step)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from audioemb.nn.encoders import build_encoder
    from audioemb.nn.frontend import LogMel, LogMelConfig
    from audioemb.nn.views import Views
    from audioemb.objectives import get_objective
    from audioemb.objectives.base import Batch
    from audioemb.train.recipes import load_recipe

    cfg = load_recipe(recipe)
    torch.manual_seed(0)
    frontend = LogMel(LogMelConfig(**{k: v for k, v in cfg.frontend.items() if k != "type"}))
    objective = get_objective(cfg.objective)(build_encoder(cfg.encoder), frontend,
                                             Views(cfg.views, std=frontend.std), **cfg.objective_params)
    objective.setup(10 * cfg.batch_size)
    n = int(cfg.crop_s * frontend.cfg.sample_rate)
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
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best


def conv_rate(recipe: str, threads: int = 1, repeat: int = 3) -> tuple[float, float]:
    """(FLOP/s, share of the step's FLOPs) of the recipe's conv stack alone (``encoder.features``, forward
    and backward, channels-last as the trainer runs it) on one step's views: how fast this torch's
    convolution kernels run this network here, with no data path, loss or optimiser around them."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from audioemb.nn.encoders import build_encoder
    from audioemb.train.recipes import load_recipe

    cfg = load_recipe(recipe)
    torch.set_num_threads(threads)
    encoder = build_encoder(cfg.encoder)
    features = getattr(encoder, "features", None)
    if features is None:
        raise SystemExit(f"{recipe}: its encoder has no conv stack (encoder.features) to time")
    features = features.to(memory_format=torch.channels_last)
    fe = cfg.frontend
    frames = 1 + int(cfg.crop_s * fe.get("sample_rate", 16000)) // fe.get("hop_length", 160)  # the views' size
    x = torch.randn(cfg.batch_size * 2, 1, fe.get("n_mels", 64), frames).to(
        memory_format=torch.channels_last)

    def step():
        features.zero_grad(set_to_none=True)
        features(x).sum().backward()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = float(counter.get_total_flops())
    step()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t)
    return flops / best, flops


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
    flops, conv_flops, views = step_flops(args.recipe)
    per_view = flops / views
    one = gemm_rate(1)
    ceiling = args.cores * one / per_view
    conv, _ = conv_rate(args.recipe)
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
