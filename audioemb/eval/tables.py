"""Markdown tables of held-out figures for model cards: per-metric task tables, domain means, the rule."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import RETIRED
from . import rules

if TYPE_CHECKING:
    from ..model_config import ModelConfig

TASK_NOTES = {
    "speech-keyword": "20 keywords, espeak-ng voices never heard in training (grouped by voice)",
    "speech-speaker": "which of 15 Hedgewars voice packs speaks, on held-out phrases (grouped by phrase)",
    "speech-language": "language of Tux Paint stamp descriptions, held-out stamps (grouped by stamp)",
    "speech-tone": "Mandarin tone of gcin syllables, held-out syllables (grouped by syllable)",
    "music-family": "GM instrument family of FluidR3 notes (grouped by program: unseen instruments)",
    "music-pitch": "MIDI pitch 48-72 of FluidR3 notes (grouped by program)",
    "sound-category": "Sonic Pi sample category and Tux Paint animal class, held-out samples",
}
METRICS = {"probe_acc": "Linear probe accuracy", "knn_p10": "kNN precision@10",
           "fewshot_acc": "Few-shot accuracy (5 examples per class)", "map": "Retrieval mAP"}
PROTOCOL = ("Linear probe: 5-fold cross-validated logistic regression on standardised embeddings, folds grouped so "
            "that no group is on both sides. Few-shot: a prototype classifier (nearest class mean on centred, "
            "L2-normalised embeddings; SimpleShot, Wang et al., 2019) taught with 5 examples per class, averaged "
            "over 20 random draws, examples and test clips from different groups. kNN precision@10 and mAP on cosine "
            "similarity, excluding neighbours from the query's own group. `@random-init` is the same architecture "
            "and frontend with random encoder weights, mean ± std over its random seeds; `logmel-stats` is per-band "
            "log-mel mean+std. Bold marks the best figure of each task.")


def cell(r: dict, metric: str, best: float | None = None) -> str:
    if metric not in r:
        return ""
    v = f"{r[metric]:.3f}"
    if best is not None and r[metric] == best:
        v = f"**{v}**"
    sd = r.get("seed_std", {}).get(metric)
    return v + (f" ± {sd:.3f}" if sd is not None else "")


def _header(names: list[str]) -> str:
    """Column names; a reference model replaced by a retrain since (its stored figures) is marked retired."""
    return " | ".join(f"{n} (retired)" if n in RETIRED else n for n in names)


def metric_table(tasks: dict, results: dict, metric: str) -> str:
    """Rows: tasks (with clips / classes); columns: the models and baselines; cells: ``metric``."""
    names = list(results)
    lines = ["| task | clips / classes | " + _header(names) + " |", "|---|---|" + "---|" * len(names)]
    for task, info in tasks.items():
        vals = [results[n][task][metric] for n in names if task in results[n] and metric in results[n][task]]
        best = max(vals) if vals else None
        cells = [cell(results[n][task], metric, best) if task in results[n] else "" for n in names]
        lines.append(f"| {task} | {info['clips']} / {info['classes']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def domain_table(results: dict, tasks: dict) -> str:
    """Mean of each rule metric by domain, one column per model or baseline."""
    names = list(results)
    doms = sorted({rules.domain(t) for t in tasks})
    lines = ["| domain | metric | " + _header(names) + " |", "|---|---|" + "---|" * len(names)]
    for d in doms:
        for metric in rules.RULE_METRICS:
            cells = []
            for n in names:
                m = rules.mean(results[n], metric, d)
                sd = rules.seed_std_of_mean(results[n], metric, d)
                cells.append("" if m is None else f"{m:.3f}" + (f" ± {sd:.3f}" if sd is not None else ""))
            lines.append(f"| {d} | {rules.SHORT[metric]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figures(tasks: dict, results: dict) -> str:
    """One table per metric, then the domain means."""
    out = []
    for metric, title in METRICS.items():
        if any(metric in r for res in results.values() for r in res.values()):
            out += [f"**{title}**", "", metric_table(tasks, results, metric), ""]
    out += ["**Means by domain**", "", domain_table(results, tasks), ""]
    return "\n".join(out)


FINDINGS = "docs/findings.md, \"Which shipped models do not beat their random init\""


def _bullets(items: list[str] | tuple[str, ...]) -> str:
    return "\n".join(f"- {t}" for t in items)


def verdict(name: str, results: dict, tried: list[str] | tuple[str, ...] = ()) -> str:
    """Whether the model learns (beats its random init) and where it stands against the default-model rule.

    ``tried`` (the config's ``training.tried``) lists what was done to make a model that does not learn learn,
    or a flagship clear the bars it misses, and for a model that does learn, the earlier versions it replaced;
    the card shows it in every case.
    """
    out = []
    gaps = rules.learning_gap(name, results)
    parts = []
    tried_shown = False
    for metric, g in gaps.items():
        if g is not None:
            own, ref, sd = g
            parts.append(f"{rules.SHORT[metric]} {own:.3f} vs {ref:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")
                         + f" ({own - ref:+.3f})")
    if parts:
        learns = all(g is not None and g[0] > g[1] for m, g in gaps.items() if m in ("probe_acc", "knn_p10"))
        out.append(f"Against its own random-init encoder (overall means): {'; '.join(parts)}. "
                   + ("**It learns**: it beats its random init on the probe and kNN means." if learns else
                      "**It does not beat its random init** on both the probe and the kNN means."))
        if not learns and tried:
            out.append("What was tried to make it learn (overall means against its random init: probe / kNN "
                       "p@10 / few-shot; details in the project's " + FINDINGS + "):\n\n" + _bullets(tried))
            tried_shown = True
        elif tried and not rules.is_flagship(name):
            out.append("Earlier versions, and what else was tried (overall means against the random init: probe / "
                       "kNN p@10 / few-shot; details in the project's docs/findings.md):\n\n" + _bullets(tried))
            tried_shown = True
    if not {rules.domain(t) for t in results[name]} & set(rules.RULE_DOMAINS):
        return "\n\n".join(out)
    misses = rules.rule_misses(name, results)
    if rules.is_flagship(name):
        bars = rules.flagship_misses(name, results)
        n = 2 * len(rules.FLAGSHIP_DOMAINS) * len(rules.FLAGSHIP_METRICS) + 1
        out.append(f"Flagship bars: it clears {n - len(bars)} of {n}. "
                   + ("**It clears them all.**" if not bars else f"**It misses**: {'; '.join(bars)}."))
        if bars and tried and not tried_shown:
            out.append("What was tried to clear them (details in the project's docs/findings.md):\n\n"
                       + _bullets(tried))
        misses = [m for m in misses if m not in bars] + bars
    out.append("Default-model rule: " + rules.RULE_TEXT + " "
               + ("**This model clears it.**" if not misses else f"**Misses it**: {'; '.join(misses)}."))
    return "\n\n".join(out)


def evaluation_section(cfg: ModelConfig) -> str:
    """The card's held-out section: corpus tasks (or a plain statement that there are none), then the
    user's own labelled data given with ``--eval``."""
    m = cfg.metrics
    out = ["## Held-out evaluation", ""]
    if m.results and m.heldout_tasks:
        notes = [f"- `{k}`: {TASK_NOTES.get(k, _describe(v))}" for k, v in m.heldout_tasks.items()]
        out += [f"On the held-out tasks of {m.corpus or 'the corpus'}: clips never used in training. "
                + PROTOCOL, "", *notes, "", figures(m.heldout_tasks, m.results),
                verdict(cfg.name, m.results, cfg.training.tried), ""]
    else:
        out += [f"_No corpus figures: {m.no_corpus or 'this model was not evaluated on a corpus'}._", ""]
    ot = m.other_tasks
    if ot.get("results"):
        out += _task_block(f"Tasks outside the suite: {ot.get('corpus') or 'another corpus'}",
                           "A later corpus version's own held-out tasks, scored beside the same baselines and kept "
                           "out of the means and the rule above, so that the suite's figures stay comparable. ", ot)
    ue = m.user_eval
    if ue:
        sha = f" (sha256 `{ue['sha256'][:16]}…` of its files, sizes and labels)" if ue.get("sha256") else ""
        out += _task_block(f"Held-out data given at export: `{ue['source']}`{sha}",
                           "Labelled clips given with `--eval`, scored beside "
                           + ("the starting model, " if ue.get("start") else "")
                           + "the same encoder with random weights and log-mel statistics. ", ue)
        if ue.get("start") and ue["start"] in ue["results"]:
            own, start = ue["results"][cfg.name], ue["results"][ue["start"]]
            deltas = [f"{rules.SHORT[k]} {rules.mean(own, k) - rules.mean(start, k):+.3f}" for k in rules.RULE_METRICS
                      if rules.mean(own, k) is not None and rules.mean(start, k) is not None]
            out += [f"Change over the starting model `{ue['start']}` (means over these tasks): "
                    f"{', '.join(deltas)}.", ""]
    return "\n".join(out)


def _task_block(title: str, intro: str, scored: dict) -> list[str]:
    """A card subsection for figures kept apart from the suite: ``scored`` is ``{"tasks": ..., "results": ...}``."""
    return [f"### {title}", "", intro + PROTOCOL, "",
            *[f"- `{k}`: {_describe(v)}" for k, v in scored["tasks"].items()], "",
            figures(scored["tasks"], scored["results"])]


def _describe(info: dict) -> str:
    g, small = info.get("groups"), info.get("smallest_class")
    return (f"{info['clips']} clips, {info['classes']} classes"
            + (f", {g} groups (folds and few-shot draws split by group)" if g else ", no groups (split by clip)")
            + (f"; its smallest class has {small} clips, so it allows fewer folds, few-shot examples and same-class "
               f"neighbours than the protocol's 5, 5 and 10 (kNN precision@10 is at most {(small - 1) / 10:.1f} "
               "there)" if small and small < 11 else ""))
