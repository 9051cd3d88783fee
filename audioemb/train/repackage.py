"""A trained model folder read out another way, without training: same weights, another embedding.

The readouts of the AudioNTT and FrameNet encoders (which features form each frame:
:class:`~audioemb.nn.encoders.AudioNTT`, :class:`~audioemb.nn.encoders.FrameNet`) have no parameters of their
own, so a shipped folder can be re-exported with another one. The new folder keeps the training record, says
what changed in ``training.after_training``, is checked again (ONNX parity, collapse) and is scored again beside
its random-init encoder read out the same way, so its card's figures are the new readout's.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from ..card import write_card
from ..eval.export_eval import ExportError
from ..modelfolder import open_folder, write_config
from ..nn.encoders import audiontt, framenet
from ..nn.export import load_module, save_model
from ..nn.model import AudioEmbedder
from .package import _check_collapse, atomic_folder, check_waves, parity_waves

# encoder type -> (its readouts, the default one)
READOUTS: dict[str, tuple[tuple[str, ...], str]] = {"audiontt": (audiontt.READOUTS, "mlp"),
                                                    "framenet": (framenet.READOUTS, "context")}


def parity_signals(sr: int, n: int = 6) -> list[np.ndarray]:
    """Deterministic signals of 1.5-10 s for an ONNX parity check when no corpus is given: tone sweeps with
    harmonics under decaying noise bursts, so every frequency band and level range is exercised."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        t = np.arange(int(sr * (1.5 + 8.5 * i / max(1, n - 1)))) / sr
        f0 = 80.0 * 2 ** (5 * t / t[-1])  # five octaves up
        phase = 2 * np.pi * np.cumsum(f0) / sr
        tone = sum(np.sin(k * phase) / k for k in range(1, 6))
        bursts = rng.standard_normal(len(t)) * np.exp(-((t * (2 + i)) % 1.0) * 6)
        out.append((0.3 * tone + 0.1 * bursts).astype(np.float32) * 10 ** (-i / 4))
    return out


def package_readout(src: str | Path, out: Path, readout: str, corpus: Path | None, evaluate: bool = True,
                    name: str | None = None, log=print, seeds: int | None = None) -> dict:
    """Re-export the model folder (or shipped name) ``src`` to ``out`` with the encoder's ``readout`` set to
    ``readout``, its weights unchanged; check and score it as :func:`~audioemb.train.package.package_run`
    does (without ``corpus``: parity on :func:`parity_signals`, no collapse check and no figures). ``out`` may be
    ``src`` itself: it is replaced only once the new folder is complete."""
    from ..registry import resolve

    folder = open_folder(resolve(src), verify=("model.safetensors",))
    cfg = folder.config
    enc_cfg = cfg["encoder"]
    if enc_cfg.get("type") not in READOUTS:
        raise ExportError(f"{folder.path}: only the {' and '.join(READOUTS)} encoders have a choice of readout, "
                          f"not {enc_cfg.get('type')!r}")
    choices, default = READOUTS[enc_cfg["type"]]
    if readout not in choices:
        raise ExportError(f"the {enc_cfg['type']} readout must be one of {choices}, not {readout!r}")
    if cfg.get("embedding_norm"):
        raise ExportError(f"{folder.path} standardises its embedding with statistics of the current readout; "
                          "change the readout on the folder it was made from, then standardise again")
    old = enc_cfg.get("readout", default)
    if readout == old:
        raise ExportError(f"{folder.path} already reads out {readout!r}")
    trained = load_module(folder)
    # the encoder's config() leaves a default readout out, so reading back to it restores the original config
    model = AudioEmbedder.from_config(cfg["frontend"], {**enc_cfg, "readout": readout}).eval()
    model.frontend.load_state_dict(trained.frontend.state_dict())
    model.encoder.load_state_dict(trained.encoder.state_dict())  # strict: the readout adds no parameters
    corpus = Path(corpus) if corpus is not None else None
    training = dict(cfg.get("training", {}))
    if corpus is not None:
        waves = check_waves(corpus, [], None, model.sample_rate)
        training["final_collapse_std_heldout"] = round(_check_collapse(model, waves), 4)
    else:  # the weights were checked when the folder was made; ONNX parity needs only some varied signals
        waves = parity_signals(model.sample_rate)
    sha = cfg["files"]["model.safetensors"]
    note = (f"readout `{old}` → `{readout}` (`audioemb export --from {cfg['name']} "
            f"--readout {readout}`); the weights are unchanged (model.safetensors sha256 `{sha[:16]}…`), the "
            f"embedding is {cfg['embedding_dim']} → {model.encoder.embedding_dim} dims, and the figures below are "
            "the new readout's")
    return write_reexport(model, out, cfg, training, note, name, corpus, waves, evaluate, log, seeds,
                          keep_weights=folder.path / "model.safetensors")


def write_reexport(model: AudioEmbedder, out: Path, cfg: dict, training: dict, note: str, name: str | None,
                   corpus: Path | None, waves: list[np.ndarray], evaluate: bool, log, seeds: int | None,
                   extra: dict | None = None, keep_weights: Path | None = None) -> dict:
    """Write ``out`` for the folder of config ``cfg`` changed without training: today's date and ``note``
    appended to ``training.after_training``, ``extra`` added to the config's meta, named ``name`` (default: the
    source's), ONNX parity on ``waves``, scored on ``corpus`` when ``evaluate``; ``keep_weights`` as for
    :func:`~audioemb.nn.export.save_model`."""
    from ..eval.export_eval import evaluate_export

    name = name or cfg["name"]
    training["after_training"] = [*training.get("after_training", []), f"{dt.date.today().isoformat()}: {note}"]
    meta = {"name": name, "objective": cfg.get("objective", {}), "training": training, **(extra or {}),
            "inference": {k: cfg["inference"][k] for k in ("window_s", "min_s") if k in cfg.get("inference", {})}}
    with atomic_folder(out) as tmp:
        config = save_model(model, tmp, meta, parity_waves(waves, model.min_samples), keep_weights)
        log(f"saved {out} (ONNX max abs diff {config['onnx']['max_abs_diff_vs_torch']:.2e})")
        if evaluate:
            config["metrics"] = evaluate_export(tmp, name, corpus, None, None, None, log, seeds)
            write_config(tmp, config)
        write_card(tmp)
    return config
