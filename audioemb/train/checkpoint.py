"""Training checkpoints as safetensors plus JSON (never pickle), written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: dict,
                    extra: dict[str, torch.Tensor] | None = None) -> None:
    """Write ``path`` (.safetensors: model + optimizer tensors, and ``extra`` state such as the views' mixup
    memory) and ``path.json`` (step, param groups, meta)."""
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
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    info = {**meta, "param_groups": opt["param_groups"], "opt_scalars": scalars}
    tmp_json = path.with_name(path.name + ".json.tmp")
    tmp_json.write_text(json.dumps(info, indent=1))
    os.replace(tmp, path)
    os.replace(tmp_json, path.with_name(path.name + ".json"))


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict:
    """Restore model (and optimizer) state from :func:`save_checkpoint` files; return the meta dict, with the
    ``extra`` tensors under ``"extra"``."""
    tensors = load_file(str(path))
    info = json.loads(path.with_name(path.name + ".json").read_text())
    info["extra"] = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if optimizer is not None:
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, name = k.split(".", 2)
                state.setdefault(int(pid), {})[name] = v
        for pid, sc in info.get("opt_scalars", {}).items():
            state.setdefault(int(pid), {}).update(sc)
        optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    return info
