"""``docs/results.md``: every shipped model on every held-out task, with training cost, from one command."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..registry import model_configs, pretrained_dir

METRIC_TITLES = {"probe_acc": "Linear-probe accuracy (5-fold, grouped)", "knn_p10": "kNN precision@10 (cosine)",
                 "map": "Retrieval mAP (cosine)"}


def collect(pattern: str = "*") -> tuple[list[str], dict[str, dict], dict[str, dict]]:
    """(tasks, {row name: {task: metrics}}, {model: config}) from the shipped models' stored figures.

    Baselines (log-mel statistics, and each encoder architecture untrained) appear once each.
    """
    configs = model_configs(pattern)
    rows: dict[str, dict] = {}
    tasks: list[str] = []
    baselines: dict[str, dict] = {}
    for name, cfg in configs.items():
        m = cfg.get("metrics", {})
        res = m.get("results", {})
        if name not in res:
            continue
        tasks = tasks or list(m["heldout_tasks"])
        rows[name] = res[name]
        for other, r in res.items():
            if other.endswith("@random-init"):
                baselines.setdefault(f"random-init {arch_name(cfg['encoder'])}", r)
            elif other != name and other not in configs:  # shipped models are rows of their own
                baselines.setdefault(other, r)
    return tasks, {**rows, **dict(sorted(baselines.items()))}, configs


def arch_name(enc: dict) -> str:
    if enc["type"] == "framenet":
        return f"framenet-{enc.get('context')}{'-causal' if enc.get('causal') else ''}"
    if enc["type"] == "concat":
        return "+".join(arch_name(p) for p in enc["parts"])
    return enc["type"]


def render(tasks: list[str], rows: dict[str, dict], configs: dict[str, dict]) -> str:
    """The markdown of docs/results.md."""
    out = ["# Results", "",
           f"Every shipped model on the corpus's held-out tasks ({dt.date.today().isoformat()}), regenerated with "
           "`audioemb results --corpus corpus` (add `--rerun` to re-score every model). Figures are measured by "
           "`audioemb export` / `audioemb eval` as described in each model card: clips never used in training, "
           "folds and neighbours grouped so that no voice, phrase, stamp, syllable or instrument program is on both "
           "sides. Baselines: log-mel mean+std (`logmel-stats`) and each encoder architecture with random weights.",
           ""]
    for metric, title in METRIC_TITLES.items():
        out += [f"## {title}", "", "| model | " + " | ".join(tasks) + " | mean |", "|---|" + "---|" * (len(tasks) + 1)]
        for name, res in rows.items():
            vals = [res[t][metric] for t in tasks if t in res]
            cells = [f"{res[t][metric]:.3f}" if t in res else "" for t in tasks]
            mean = f"{sum(vals) / len(vals):.3f}" if vals else ""
            label = f"[{name}](../pretrained/{name}/README.md)" if name in configs else name
            out.append(f"| {label} | " + " | ".join(cells) + f" | {mean} |")
        out.append("")
    out += ["## Training cost", "", "| model | objective | encoder | parameters | steps × batch | crop (s) | "
            "wall time (h, 2 CPU cores) |", "|---|---|---|---|---|---|---|"]
    for name, cfg in configs.items():
        t = cfg.get("training", {})
        steps = f"{t.get('steps')} × {t.get('batch_size')}" if t.get("steps") else "(parts)"
        out.append(f"| {name} | {cfg.get('objective', {}).get('name')} | {arch_name(cfg['encoder'])} | "
                   f"{cfg.get('parameters', 0) / 1e6:.2f} M | {steps} | {t.get('crop_s', '')} | "
                   f"{(t.get('wall_time_s') or 0) / 3600:.2f} |")
    return "\n".join(out) + "\n"


def rerun(corpus: Path, pattern: str = "*", log=print) -> None:
    """Re-score every shipped model (and its baselines) on the corpus tasks and store the figures."""
    from ..eval.baselines import LogMelStats, random_init_model
    from ..eval.run import corpus_tasks, evaluate
    from ..modelfolder import write_config
    from ..runtime import load

    tasks = corpus_tasks(corpus)
    for name, cfg in model_configs(pattern).items():
        models = [load(name), random_init_model(name), LogMelStats(cfg["frontend"])]
        result = evaluate(models, tasks, log=log)
        cfg["metrics"] = {**cfg.get("metrics", {}), "heldout_tasks": result["tasks"], "results": result["results"]}
        write_config(pretrained_dir() / name, cfg)


def write_results(out: Path, pattern: str = "*", cards: bool = True) -> str:
    """Write docs/results.md (and regenerate each model card from its config)."""
    from ..card import write_card

    tasks, rows, configs = collect(pattern)
    text = render(tasks, rows, configs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if cards:
        for name in configs:
            write_card(pretrained_dir() / name)
    return text
