"""Training checkpoints: one safetensors file per save, written atomically.

Tensors (model, projectors, optimizer moments, RNG state) are stored as
safetensors; everything else (epoch, step, history, optimizer scalars) as JSON
in the file's metadata, with a sha256 of the tensor bytes and of that JSON
verified on load. Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xdistill import __version__
from xdistill.errors import XDistillError
from xdistill.io import atomic_write, load_weights

CHECKPOINT_NAME = "checkpoint.safetensors"
# Format 2 also hashes the JSON metadata: in format 1 a changed epoch or history went unnoticed.
FORMAT = "xdistill-checkpoint-2"
_HASHED_METADATA = ("format", "xdistill", "state", "optimizer")


def _digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    for key in _HASHED_METADATA:
        text = metadata.get(key, "").encode()
        digest.update(f"|{key}|{len(text)}|".encode())
        digest.update(text)
    return digest.hexdigest()


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for pid, entries in state["state"].items():
        scalars["state"][str(pid)] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars["state"][str(pid)][key] = value
    return tensors, scalars


def save_checkpoint(path: Path, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer,
                    state: dict[str, Any]) -> None:
    """Atomically write modules' weights, the optimizer and ``state`` (JSON-able) to ``path``."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"{prefix}.{key}"] = value.detach().cpu().contiguous()
    opt_tensors, opt_scalars = _optimizer_tensors(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    metadata = {"format": FORMAT, "xdistill": __version__, "state": json.dumps(state), "optimizer": json.dumps(opt_scalars)}
    metadata["sha256"] = _digest(tensors, metadata)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_checkpoint(path: Path, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore modules and optimizer from ``path``; returns the saved ``state``."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except FileNotFoundError:
        raise XDistillError(f"No checkpoint at '{path}' to resume from. Run without --resume to start afresh.") from None
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise XDistillError(f"The checkpoint '{path}' is damaged ({exc}). Delete it and run without --resume.") from exc
    if metadata.get("format") != FORMAT:
        raise XDistillError(
            f"The checkpoint '{path}' has format {metadata.get('format')!r}, not {FORMAT!r} (another xdistill version "
            "or not an xdistill checkpoint). Delete it and run without --resume."
        )
    if metadata.get("sha256") != _digest(tensors, metadata):
        raise XDistillError(f"The checkpoint '{path}' failed its checksum. Delete it and run without --resume.")
    for prefix, module in modules.items():
        own = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        load_weights(module, own, f"The checkpoint '{path}'", f"this run's {prefix}",
                     "Resume with the same config, or start afresh without --resume.")
    scalars = json.loads(metadata["optimizer"])
    opt_state: dict[str, Any] = {"param_groups": scalars["param_groups"], "state": {}}
    for pid, entries in scalars["state"].items():
        opt_state["state"][int(pid)] = dict(entries)
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, pid, name = key.split(".", 2)
            opt_state["state"].setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict(opt_state)
    torch.set_rng_state(tensors["rng.torch"])
    return json.loads(metadata["state"])


def to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value
