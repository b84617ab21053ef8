"""A tiny language-model world under tmp_path: two text domains, a shared byte-level BPE tokenizer,
two small GPT teachers each trained for a few steps on one domain, a target task close to the
first domain, and a zoo."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from xdistill.kinds.language_modeling.student import save_lm_folder
from xdistill.kinds.language_modeling.task import write_lm_task
from xdistill.kinds.language_modeling.verbs import train_language_model
from xdistill.models.tokenizer import train_bpe

TEACHER_KNOBS = {"d_model": 32, "n_layer": 1, "n_head": 2, "context": 32}
STUDENT_KNOBS = {"d_model": 16, "n_layer": 1, "n_head": 2, "context": 32}


def code_documents(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    names = ["alpha", "beta", "gamma", "delta", "value", "items", "total", "count"]
    docs = []
    for _ in range(n):
        a, b = rng.sample(names, 2)
        docs.append(f"def {a}_{b}({a}, {b}):\n    {a} = {a} + {b}\n    return {a} * {rng.randint(1, 9)}\n")
    return docs


def prose_documents(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = ["the", "module", "returns", "a", "list", "of", "values", "when", "called", "with", "an", "argument"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(12, 30))).capitalize() + ".\n" for _ in range(n)]


@dataclass
class LMWorld:
    root: Path
    task: Path
    zoo: Path
    tokenizer: Path
    cache: Path


def build_world(root: Path) -> LMWorld:
    code, prose = code_documents(60, 0), prose_documents(60, 1)
    tokenizer = train_bpe(code + prose, 300)
    (root / "tokenizer.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "tokenizer.json").write_text(tokenizer.to_str())
    for name, docs in (("code", code), ("prose", prose)):
        teacher = train_language_model(docs, tokenizer, TEACHER_KNOBS, epochs=6, batch_size=8, lr=1e-2, progress=False)
        save_lm_folder(root / "teachers" / name, teacher, tokenizer, {"context": 32})
    write_lm_task(root / "task", "tiny-code", code_documents(12, 5), code_documents(6, 6))
    zoo = {"teachers": [{"name": "code", "kind": "gpt", "path": "teachers/code", "domain": "toy Python functions"},
                        {"name": "prose", "kind": "gpt", "path": "teachers/prose", "domain": "toy English sentences"}]}
    (root / "zoo.yaml").write_text(yaml.safe_dump(zoo))
    return LMWorld(root, root / "task", root / "zoo.yaml", root / "tokenizer.json", root / "cache")


@pytest.fixture(scope="session")
def lm_world(tmp_path_factory) -> LMWorld:
    return build_world(tmp_path_factory.mktemp("lm-world"))
