"""A language-model student on disk, in two forms that hold the same things.

- a run folder: ``model.safetensors``, ``config.json`` and ``tokenizer.json`` (the layout of a
  ``kind: gpt`` teacher, so a distilled student can teach in turn) beside ``student.json``;
- one ``.safetensors`` file (``xdistill pretrain --out``): the weights, with the GPT config and the
  tokenizer in its metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from xdistill.errors import XDistillError
from xdistill.io import atomic_write, atomic_write_json, atomic_write_text
from xdistill.models.gpt import GPT, GPTConfig, gpt_state
from xdistill.models.tokenizer import load_tokenizer, tokenizer_from_string
from xdistill.students import build_student

KIND = "language-modeling"


def build_lm_student(name: str, tokenizer, knobs: dict) -> "object":
    """The student network for ``tokenizer`` (family ``name``, default ``gpt``; ``context`` defaults to 128)."""
    knobs = {"context": 128, **knobs, "vocab_size": tokenizer.vocab_size}
    return build_student(name or "gpt", (int(knobs["context"]),), tokenizer.vocab_size, **knobs)


def network_of(student) -> GPT:
    return student.gpt if hasattr(student, "gpt") else student


def save_lm_file(path: Path, student, tokenizer) -> Path:
    gpt = network_of(student)
    metadata = {"xdistill_kind": KIND, "gpt_config": gpt.config.to_json(), "tokenizer": tokenizer.to_str()}
    return atomic_write(path, lambda tmp: save_file(gpt_state(gpt), str(tmp), metadata=metadata))


def save_lm_folder(folder: Path, student, tokenizer, meta: dict) -> None:
    gpt = network_of(student)
    atomic_write(folder / "model.safetensors", lambda tmp: save_file(gpt_state(gpt), str(tmp)))
    atomic_write_text(folder / "config.json", gpt.config.to_json() + "\n")
    atomic_write_text(folder / "tokenizer.json", tokenizer.to_str())
    atomic_write_json(folder / "student.json", {"kind": KIND, "family": "gpt", **meta})


def load_lm_file(path: str | Path) -> tuple[GPT, object]:
    """(network, tokenizer) of a pretrained ``.safetensors`` file written by :func:`save_lm_file`."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types
        raise XDistillError(f"'{path}' is not a safetensors file ({exc}).") from None
    if metadata.get("xdistill_kind") != KIND:
        raise XDistillError(f"'{path}' is not a pretrained language-model student (its metadata has no "
                            "language-modeling config). Make one with `xdistill pretrain --task LM_TASK --out FILE`.")
    gpt = GPT(GPTConfig.from_json(metadata["gpt_config"]))
    gpt.load_state_dict(load_file(str(path)))
    return gpt, tokenizer_from_string(metadata["tokenizer"], str(path))


def load_lm_folder(folder: str | Path) -> tuple[GPT, object]:
    """(network, tokenizer) of a run folder or a gpt teacher folder."""
    folder = Path(folder)
    missing = [n for n in ("model.safetensors", "config.json", "tokenizer.json") if not (folder / n).is_file()]
    if missing:
        raise XDistillError(f"'{folder}' has no {', '.join(missing)}: it is not a language-model run or gpt teacher "
                            "folder.")
    gpt = GPT(GPTConfig.from_json(json.loads((folder / "config.json").read_text())))
    gpt.load_state_dict(load_file(str(folder / "model.safetensors")))
    return gpt.eval(), load_tokenizer(folder / "tokenizer.json")
