"""``docs/results.md``: every shipped model on every held-out task, with training cost, from one command."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

from ..fsio import atomic_write
from ..model_config import ModelConfig
from ..registry import DEFAULT_MODEL, RETIRED, model_configs, pretrained_dir
from . import rules
from .tables import cell

METRIC_TITLES = {"probe_acc": "Linear-probe accuracy (5-fold, grouped)", "knn_p10": "kNN precision@10 (cosine)",
                 "fewshot_acc": "Few-shot accuracy (5 examples per class, 20 draws, grouped)",
                 "map": "Retrieval mAP (cosine)"}


def collect(pattern: str = "*") -> tuple[list[str], dict[str, dict], dict[str, ModelConfig]]:
    """(tasks, {row name: {task: metrics}}, {model: config}) from the shipped models' stored figures.

    Baselines (log-mel statistics, and each encoder architecture untrained) appear once each.
    """
    configs = model_configs(pattern)
    rows: dict[str, dict] = {}
    tasks: list[str] = []
    baselines: dict[str, dict] = {}
    random: dict[str, tuple[str, dict, list[str]]] = {}  # one row per distinct random-init encoder
    for name, cfg in configs.items():
        res = cfg.metrics.results
        if name not in res:
            continue
        tasks = tasks or list(cfg.metrics.heldout_tasks)
        rows[name] = res[name]
        for other, r in res.items():
            if other.endswith("@random-init"):
                random.setdefault(json.dumps(r, sort_keys=True), (arch_name(cfg.encoder), r, []))[2].append(name)
            elif other != name and other not in configs and other not in RETIRED:  # shipped models have rows
                baselines.setdefault(other, r)  # a retired reference model (stored beside older cards) has none
    per_arch = Counter(arch for arch, _, _ in random.values())
    for arch, r, names in random.values():  # an architecture with several configs: say whose encoder each row is
        label = f" [{names[0]}{f' +{len(names) - 1}' if len(names) > 1 else ''}]" if per_arch[arch] > 1 else ""
        baselines[f"random-init {arch}{label}"] = r
    return tasks, {**rows, **dict(sorted(baselines.items()))}, configs


def arch_name(enc: dict) -> str:
    if enc["type"] == "framenet":
        return f"framenet-{enc.get('context')}{'-causal' if enc.get('causal') else ''}"
    if enc["type"] == "concat":
        return "+".join(arch_name(p) for p in enc["parts"])
    return enc["type"]


def _mean_cell(res: dict, metric: str, tasks: list[str]) -> str:
    vals = [res[t][metric] for t in tasks if t in res and metric in res[t]]
    if not vals:
        return ""
    sd = rules.seed_std_of_mean({t: res[t] for t in tasks if t in res}, metric)
    return f"{sum(vals) / len(vals):.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def learning_table(configs: dict[str, ModelConfig]) -> list[str]:
    """Each model against its own random-init encoder (mean ± std over seeds) on the three rule metrics."""
    out = ["| model | " + " | ".join(f"{rules.SHORT[m]}: model · random init · Δ" for m in rules.RULE_METRICS)
           + " | learns (probe and kNN) |", "|---|" + "---|" * (len(rules.RULE_METRICS) + 1)]
    for name, cfg in configs.items():
        res = cfg.metrics.results
        if name not in res:
            continue
        gaps = rules.learning_gap(name, res)
        cells = []
        for g in gaps.values():
            cells.append("" if g is None else f"{g[0]:.3f} · {g[1]:.3f}" + (f" ± {g[2]:.3f}" if g[2] is not None
                                                                             else "") + f" · {g[0] - g[1]:+.3f}")
        core = [gaps[m] for m in ("probe_acc", "knn_p10")]
        learns = "?" if None in core else ("yes" if all(g[0] > g[1] for g in core) else "**no**")
        out.append(f"| {name} | " + " | ".join(cells) + f" | {learns} |")
    return out


def rule_section(configs: dict[str, ModelConfig]) -> list[str]:
    """The default-model rule applied to every shipped model's figures."""
    stored = {n: c.metrics.results for n, c in configs.items()}
    best, misses = rules.pick_default({n: r for n, r in stored.items() if n in r})
    out = ["## Default-model rule", "", rules.RULE_TEXT, "", "| model | clears the rule | where it misses |",
           "|---|---|---|"]
    for name, miss in misses.items():
        shown = "; ".join(miss[:4]) + (f"; and {len(miss) - 4} more" if len(miss) > 4 else "")
        out.append(f"| {name} | {'yes' if not miss else 'no'} | {shown} |")
    out.append("")
    if best is None:
        out.append(f"**No shipped model clears the rule.** The default stays `{DEFAULT_MODEL}` until one does.")
    elif best == DEFAULT_MODEL:
        out.append(f"The rule picks `{best}`, the current default.")
    else:
        out.append(f"**The rule picks `{best}`, but the default is `{DEFAULT_MODEL}`**: the default should change.")
    return [*out, ""]


def render(tasks: list[str], rows: dict[str, dict], configs: dict[str, ModelConfig], pattern: str = "*") -> str:
    """The markdown of docs/results.md (of the shipped models matching ``pattern``)."""
    text = _render(tasks, rows, configs)
    if pattern != "*":  # the rule and the tables below are about these models only
        text = text.replace("# Results\n\nEvery shipped model", f"# Results\n\nThe shipped models matching "
                            f"`{pattern}` (the rule below is applied among them only)", 1)
        text = text.replace("**No shipped model clears the rule.**", f"**None of the models matching `{pattern}` "
                            "clears the rule.**", 1)
    return text


def _render(tasks: list[str], rows: dict[str, dict], configs: dict[str, ModelConfig]) -> str:
    out = ["# Results", "", f"Every shipped model on the corpus's held-out tasks ({dt.date.today().isoformat()}), "
           "regenerated with `audioemb results --corpus corpus` (add `--rerun` to re-score every model, and "
           "`--other-tasks corpus2` to score corpus v2's own tasks; embeddings and scores are cached per model "
           "in `corpus/cache/eval/`, so only new or changed models are re-scored). Figures are measured by "
           "`audioemb export` / `audioemb eval` as described in each model card: clips never used in training, "
           "folds, few-shot draws and neighbours grouped so that no voice, phrase, stamp, syllable or "
           "instrument program is on both sides. Baselines: log-mel mean+std (`logmel-stats`) and each model's "
           "encoder with random weights, mean ± std over 3 seeds: one row per distinct random-init encoder, named "
           "`[MODEL +N]` (the first of the N + 1 models it serves) where an architecture has several "
           "configurations. The few-shot probe is a prototype "
           "classifier (nearest class mean, SimpleShot) taught with 5 clips per class: with so few labels it "
           "cannot re-weight random features, so it shows what training added better than the linear probe "
           "does. Re-scored on another CPU, a figure can move by one clip of its task: onnxruntime's kernels "
           "differ there in the last bits, and a relative change of 1e-6 in `npc-s.debian`'s embeddings moves "
           "its `speech-speaker` probe between 0.648 and 0.651 (1 of 296 clips), so smaller differences mean "
           "nothing.", ""]
    out += ["## Does each model learn?", "", "Overall means over the tasks below, against the same encoder with "
            "random weights (mean ± std over 3 seeds of the overall mean).", "", *learning_table(configs), ""]
    out += rule_section(configs)
    for metric, title in METRIC_TITLES.items():
        if not any(metric in r for res in rows.values() for r in res.values()):
            continue
        out += [f"## {title}", "", "| model | " + " | ".join(tasks) + " | mean |", "|---|" + "---|" * (len(tasks) + 1)]
        for name, res in rows.items():
            cells = [cell(res[t], metric) if t in res else "" for t in tasks]
            label = f"[{name}](../pretrained/{name}/README.md)" if name in configs else name
            out.append(f"| {label} | " + " | ".join(cells) + f" | {_mean_cell(res, metric, tasks)} |")
        out.append("")
    out += other_tasks_section(configs)
    out += ["## Training cost", "", "| model | objective | encoder | parameters trained | steps × batch | crop (s) | "
            "wall time (h) | where |", "|---|---|---|---|---|---|---|---|"]
    for name, cfg in configs.items():
        t = cfg.training
        steps = f"{t.steps} × {t.global_batch}" if t.steps else "(parts)"  # clips per step, all processes
        where = (f"{t.env.device}, {t.env.machine}" if t.env.recorded else t.env.legacy) or "(parts)"
        out.append(f"| {name} | {cfg.objective_name} | {arch_name(cfg.encoder)} | "
                   f"{cfg.trained_parameters / 1e6:.2f} M | {steps} | {t.crop_s if t.crop_s is not None else ''} | "
                   f"{t.wall_time_s / 3600:.2f} | {where} |")
    return "\n".join(out) + "\n"


def rerun(corpus: Path, pattern: str = "*", log=print, cache: Path | None = None) -> None:
    """Re-score every shipped model, its random-init encoder (3 seeds) and log-mel statistics on the corpus
    tasks, and store the figures in each config. Embeddings and scores are cached in ``corpus/cache/eval``
    (or ``cache``), keyed by the model's weights and the task files, so a re-run only scores what changed.

    A model whose folder was replaced while it was being scored is left alone (its new weights were not scored).
    """
    def store(metrics: dict, result: dict) -> dict:
        return {**metrics, "heldout_tasks": result["tasks"], "results": result["results"]}

    _rescore(corpus, pattern, log, cache, lambda cfg, tasks: tasks, store)


def rerun_other(corpus: Path, pattern: str = "*", log=print, cache: Path | None = None,
                fit_corpora: tuple = ()) -> None:
    """Score every shipped model, its random-init encoder (3 seeds) and log-mel statistics on the tasks of
    ``corpus`` that are not in the model's held-out suite (corpus v2's own tasks), and store them in its
    config as ``metrics.other_tasks``: shown in their own section, never in the suite's means or the rule.
    ``fit_corpora``: other corpora a model's embedding standardiser may have been fitted on."""
    recipe = Path(corpus) / "recipe.json"
    tag = json.loads(recipe.read_text()).get("data_tag") if recipe.exists() else None
    label = f"`{Path(corpus).name}`" + (f" ({tag})" if tag else "")

    def store(metrics: dict, result: dict) -> dict:
        return {**metrics, "other_tasks": {"corpus": label, "tasks": result["tasks"], "results": result["results"]}}

    _rescore(corpus, pattern, log, cache,
             lambda cfg, tasks: [t for t in tasks if t.name not in cfg.metrics.heldout_tasks], store, fit_corpora)


def _rescore(corpus: Path, pattern: str, log, cache: Path | None, pick, store, fit_corpora: tuple = ()) -> None:
    """Score each model on ``pick(cfg, corpus tasks)`` beside its baselines; ``store(metrics, result)`` gives
    the config's new ``metrics``."""
    from ..modelfolder import read_config, write_config
    from .baselines import LogMelStats, random_init_models, trained_model
    from .run import EvalCache, corpus_tasks, evaluate

    all_tasks = corpus_tasks(corpus)
    cache_store = EvalCache(cache or Path(corpus) / "cache" / "eval")
    configs = model_configs(pattern)
    shared = {}
    for c in configs.values():
        shared[arch_name(c.encoder)] = shared.get(arch_name(c.encoder), 0) + 1
    # the default first, then architectures many models share (one random-init baseline serves them all)
    order = sorted(configs, key=lambda n: (n != DEFAULT_MODEL, -shared[arch_name(configs[n].encoder)], n))
    for name in order:
        cfg = configs[name]
        tasks = pick(cfg, all_tasks)
        if not tasks:
            log(f"{name}: no task of {corpus} to score")
            continue
        log(f"{name}:")
        models = [trained_model(name), *random_init_models(name, onnx_dir=cache_store.root / "random-init-onnx",
                                                           corpora=(corpus, *fit_corpora)),
                  LogMelStats(cfg.raw["frontend"])]
        result = evaluate(models, tasks, log=log, cache=cache_store)
        now = read_config(pretrained_dir() / name)
        if now.get("files") != cfg.files:
            log(f"  {name} was re-exported while it was scored; its figures are left as they are")
            continue
        now["metrics"] = store(now.get("metrics", {}), result)
        write_config(pretrained_dir() / name, now)


def other_tasks_section(configs: dict[str, ModelConfig]) -> list[str]:
    """Each model and its baselines on the tasks outside the suite: probe / kNN p@10 / few-shot per task."""
    scored = {n: c.metrics.other_tasks for n, c in configs.items() if c.metrics.other_tasks.get("results")}
    if not scored:
        return []
    tasks = sorted({t for o in scored.values() for t in o["tasks"]})
    corpora = sorted({o.get("corpus") or "" for o in scored.values()})
    out = ["## Tasks outside the suite", "",
           f"Corpus {', '.join(corpora)}'s own held-out tasks ([corpus.md](corpus.md#new-held-out-tasks-v2)), "
           "scored with `audioemb results --other-tasks corpus2 --cache corpus/cache/eval`. They are not in any mean "
           "above, nor in the default-model rule, so that the suite's figures stay comparable across corpus "
           "versions. Each cell is linear probe / kNN p@10 / few-shot; the random-init row is the mean over seeds "
           "of the model's own encoder; Δ is the model minus that row.", "",
           "| model | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]

    def row(res: dict) -> list[str]:
        return [" / ".join(f"{res[t][m]:.3f}" if m in res.get(t, {}) else "–" for m in rules.RULE_METRICS)
                if t in res else "" for t in tasks]

    for name, other in scored.items():
        res, rand = other["results"].get(name, {}), other["results"].get(f"{name}@random-init", {})
        delta = {t: {m: res[t][m] - rand[t][m] for m in rules.RULE_METRICS if m in res[t] and m in rand.get(t, {})}
                 for t in res if t in rand}
        out.append(f"| [{name}](../pretrained/{name}/README.md) | " + " | ".join(row(res)) + " |")
        out.append("| &nbsp;&nbsp;Δ random init | " + " | ".join(
            " / ".join(f"{delta[t][m]:+.3f}" if m in delta.get(t, {}) else "–" for m in rules.RULE_METRICS)
            if t in delta else "" for t in tasks) + " |")
    logmel = next((o["results"][rules.LOGMEL] for o in scored.values() if rules.LOGMEL in o["results"]), None)
    if logmel:
        out.append(f"| {rules.LOGMEL} | " + " | ".join(row(logmel)) + " |")
    return [*out, ""]


def write_results(out: Path, pattern: str = "*", cards: bool = True) -> str:
    """Write docs/results.md (and regenerate each model card from its config)."""
    from ..card import write_card

    tasks, rows, configs = collect(pattern)
    if not configs:
        raise ValueError(f"no shipped model matches {pattern!r}")
    text = render(tasks, rows, configs, pattern)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, text)
    if cards:
        for name in configs:
            write_card(pretrained_dir() / name)
    return text
