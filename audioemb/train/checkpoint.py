"""Training checkpoints as one safetensors file (never pickle), written atomically.

The tensors (model, optimizer moments, ``extra`` state) and the JSON meta (step, param groups, run meta) live
in one file: the meta is the safetensors header's ``audioemb_checkpoint`` entry, so a reader sees the whole
checkpoint of one step or the previous one, never the tensors of one step with the meta of another. A copy of
the meta is also written beside it as ``checkpoint.safetensors.json`` for people to read; loading ignores
it, except for checkpoints written before the meta moved into the file (they are still loaded from it).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from ..fsio import atomic_write, atomic_write_json

META_KEY = "audioemb_checkpoint"


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: dict,
                    extra: dict[str, torch.Tensor] | None = None) -> None:
    """Write ``path`` (.safetensors: model + optimizer tensors, ``extra`` state such as the views' mixup
    memory, and the meta: step, param groups and ``meta``) atomically, then its readable ``path.json`` copy."""
    tensors = {f"model.{k}": v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tensors.update({f"extra.{k}": v.detach().contiguous().cpu() for k, v in (extra or {}).items()})
    opt = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for pid, st in opt["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v.detach().contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    info = {**meta, "param_groups": opt["param_groups"], "opt_scalars": scalars}
    atomic_write(path, save(tensors, metadata={META_KEY: json.dumps(info)}))
    atomic_write_json(path.with_name(path.name + ".json"), info, indent=1)


def read_meta(path: Path) -> dict:
    """The meta of a checkpoint: from the file's header, or (older checkpoints) from ``path.json``."""
    with safe_open(str(path), framework="pt") as f:
        embedded = (f.metadata() or {}).get(META_KEY)
    if embedded is not None:
        return json.loads(embedded)
    return json.loads(path.with_name(path.name + ".json").read_text())


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict:
    """Restore model (and optimizer) state from :func:`save_checkpoint` files; return the meta dict, with the
    ``extra`` tensors under ``"extra"``."""
    tensors = load_file(str(path))
    info = read_meta(path)
    info["extra"] = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, info.get("weights_only"))
    if optimizer is not None:
        if info.get("weights_only"):
            raise ValueError(f"{path} holds weights only ({', '.join(info['weights_only'])}); it cannot resume "
                             "training")
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, name = k.split(".", 2)
                state.setdefault(int(pid), {})[name] = v
        for pid, sc in info.get("opt_scalars", {}).items():
            state.setdefault(int(pid), {}).update(sc)
        optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    return info


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], weights_only: list[str] | None) -> None:
    """Load ``state`` into ``model``: all of it, or (a :func:`slim_checkpoint`) every tensor of the
    ``weights_only`` sub-modules, in the model's dtype."""
    if not weights_only:
        model.load_state_dict(state)
        return
    own = model.state_dict()
    need = {k for k in own if k.split(".", 1)[0] in weights_only}
    if need - set(state) or set(state) - need:
        raise KeyError(f"weights-only checkpoint of {weights_only}: missing {sorted(need - set(state))[:3]}, "
                       f"unexpected {sorted(set(state) - need)[:3]}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)


def load_kept(path: Path, model: torch.nn.Module) -> int:
    """Load the model weights of a kept copy (``RUN/kept/checkpoint-N.safetensors``, or its weights-only
    :func:`slim_checkpoint`) into ``model``; return the copy's step."""
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
        state = {k[len("model."):]: f.get_tensor(k) for k in f.keys() if k.startswith("model.")}  # noqa: SIM118
    slim = header.get("weights_only")
    load_weights(model, state, json.loads(slim) if slim else None)
    return int(header["step"])


def slim_checkpoint(src: Path, dst: Path, keep: tuple[str, ...] = ("encoder", "frontend"),
                    dtype: torch.dtype | None = None) -> None:
    """A weights-only copy of checkpoint ``src`` (or of a kept copy): the ``keep`` sub-modules (by default
    what export and held-out scoring read), optionally cast to ``dtype``, with the meta and no optimizer,
    heads or target networks. Small enough to bring a GPU run's results back; it cannot resume training."""
    src = Path(src)
    tensors = load_file(str(src))
    with safe_open(str(src), framework="pt") as f:
        header = dict(f.metadata() or {})
    slim = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
            for k, v in tensors.items() if k.startswith("model.") and k.split(".")[1] in keep}
    if META_KEY in header or src.with_name(src.name + ".json").exists():  # a run's checkpoint, either format
        info = read_meta(src)
        info.pop("opt_scalars", None)
        header[META_KEY] = json.dumps({**info, "weights_only": list(keep)})
    else:  # a kept copy: its header holds the step only
        header["weights_only"] = json.dumps(list(keep))
    atomic_write(Path(dst), save(slim, metadata=header))
