"""The default-model rule and the "does it learn" check, applied to a model's stored held-out figures.

A model's figures are ``{row: {task: metrics}}`` as :func:`audioemb.eval.run.evaluate` returns them, with
the rows ``<name>``, ``<name>@random-init`` (mean over seeds) and ``logmel-stats``. Tasks are grouped into
domains by the prefix of their name (``speech-keyword`` -> ``speech``).
"""

from __future__ import annotations

LOGMEL = "logmel-stats"
RULE_METRICS = ("probe_acc", "knn_p10", "fewshot_acc")
RULE_DOMAINS = ("speech", "music")
SHORT = {"probe_acc": "probe", "knn_p10": "kNN p@10", "fewshot_acc": "few-shot", "map": "mAP"}
RULE_TEXT = ("A model can be the default when, on the speech mean and on the music mean, it scores above log-mel "
             "mean+std and above its own encoder with random weights (mean of the random seeds) in the linear "
             "probe, in kNN precision@10 and in the few-shot probe. Among the models that can, the default is the "
             "one with the highest mean of those three overall means. A flagship (`-m`) model must also clear its "
             "bars (issue 11): at least 0.03 above both baselines on the speech, music and sound means in the "
             "linear probe and in kNN p@10, and music-pitch at least log-mel's.")
FLAGSHIP_MARGIN = 0.03
FLAGSHIP_DOMAINS = ("speech", "music", "sound")
FLAGSHIP_METRICS = ("probe_acc", "knn_p10")


def domain(task: str) -> str:
    return task.split("-")[0]


def mean(res: dict, metric: str, dom: str | None = None) -> float | None:
    """Mean of ``metric`` over the tasks of one domain (all tasks when ``dom`` is None)."""
    vals = [r[metric] for t, r in res.items() if metric in r and (dom is None or domain(t) == dom)]
    return sum(vals) / len(vals) if vals else None


def baselines(name: str, results: dict) -> list[str]:
    """The baseline rows stored beside ``name``: its random-init encoder and log-mel statistics."""
    return [b for b in (f"{name}@random-init", LOGMEL) if b in results]


def rule_misses(name: str, results: dict) -> list[str]:
    """Where ``name`` fails the default-model rule, one phrase each (empty: it passes).

    A missing baseline or metric counts as a miss, so a model is never declared eligible on partial figures.
    """
    res = results[name]
    bases = baselines(name, results)
    misses = [f"no {b} figures" for b in (f"{name}@random-init", LOGMEL) if b not in bases]
    for dom in RULE_DOMAINS:
        for metric in RULE_METRICS:
            own = mean(res, metric, dom)
            if own is None:
                misses.append(f"no {dom} {SHORT[metric]} figures")
                continue
            for b in bases:
                ref = mean(results[b], metric, dom)
                if ref is None or own <= ref:
                    misses.append(f"{dom} {SHORT[metric]} {own:.3f} ≤ {b} {ref if ref is None else f'{ref:.3f}'}")
    return misses


def is_flagship(name: str) -> bool:
    """A flagship model: the ``-m`` size (``byol_frames-m.debian2``)."""
    return "-m." in name or name.endswith("-m")


def flagship_misses(name: str, results: dict) -> list[str]:
    """Where ``name`` misses the flagship bars, one phrase each: +0.03 over log-mel and over its random-init
    encoder on each domain mean in probe and kNN p@10, and the music-pitch probe at least log-mel's."""
    res, misses = results[name], []
    for b in (f"{name}@random-init", LOGMEL):
        if b not in results:
            misses.append(f"no {b} figures")
            continue
        for dom in FLAGSHIP_DOMAINS:
            for metric in FLAGSHIP_METRICS:
                own, ref = mean(res, metric, dom), mean(results[b], metric, dom)
                if own is None or ref is None:
                    misses.append(f"no {dom} {SHORT[metric]} figures")
                elif own - ref < FLAGSHIP_MARGIN:
                    misses.append(f"{dom} {SHORT[metric]} {own:.3f} − {b} {ref:.3f} = {own - ref:+.4f} < "
                                  f"+{FLAGSHIP_MARGIN}")
    pitch, ref = res.get("music-pitch", {}).get("probe_acc"), results.get(LOGMEL, {}).get("music-pitch", {})
    if pitch is None or ref.get("probe_acc") is None:
        misses.append("no music-pitch probe figures")
    elif pitch < ref["probe_acc"]:
        misses.append(f"music-pitch probe {pitch:.3f} < {LOGMEL} {ref['probe_acc']:.3f}")
    return misses


def rule_score(name: str, results: dict) -> float:
    """What ranks eligible models: the mean of the overall probe, kNN p@10 and few-shot means."""
    vals = [mean(results[name], m) for m in RULE_METRICS]
    return sum(v for v in vals if v is not None) / len(RULE_METRICS)


def pick_default(all_results: dict[str, dict]) -> tuple[str | None, dict[str, list[str]]]:
    """(the model the rule picks or None, {model: its misses}) over ``{model: its stored results}``."""
    misses = {n: rule_misses(n, r) + (flagship_misses(n, r) if is_flagship(n) else [])
              for n, r in all_results.items() if n in r}
    ok = [n for n, m in misses.items() if not m]
    best = max(ok, key=lambda n: rule_score(n, all_results[n])) if ok else None
    return best, misses


def learning_gap(name: str, results: dict) -> dict[str, tuple[float, float, float | None] | None]:
    """Per metric: (model's overall mean, random-init overall mean, random-init std over seeds of that mean)."""
    rand = results.get(f"{name}@random-init")
    out = {}
    for metric in RULE_METRICS:
        own = mean(results[name], metric)
        ref = mean(rand, metric) if rand else None
        if own is None or ref is None:
            out[metric] = None
            continue
        out[metric] = (own, ref, seed_std_of_mean(rand, metric))
    return out


def seed_std_of_mean(res: dict, metric: str, dom: str | None = None) -> float | None:
    """Std over random seeds of the mean over tasks (None when the row is not a mean over seeds)."""
    per_task = [r.get("seed_values", {}).get(metric) for t, r in res.items() if dom is None or domain(t) == dom]
    if not per_task or any(v is None for v in per_task):
        return None
    means = [sum(v[s] for v in per_task) / len(per_task) for s in range(len(per_task[0]))]
    mu = sum(means) / len(means)
    return (sum((m - mu) ** 2 for m in means) / len(means)) ** 0.5
