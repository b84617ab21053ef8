"""``xdistill demo --world lm --tokenizers mixed``: the LM demo world with a tokenizer of its own for every model.

The corpora, targets and probes are those of :mod:`xdistill.demo.lm_world`; the teachers are trained again
(same size, same steps), each with a different tokenizer trained on its own corpus, none of them the student's:

| teacher | tokenizer |
|---|---|
| ``python-code`` | byte-level BPE of 1,024 ids |
| ``english-docs`` | a unigram model of 1,536 pieces with byte fallback |
| ``cpp-headers`` | raw bytes (256 ids and BOS) |

The student keeps the shared world's 2,048-id byte-level BPE tokenizer, and its generic student (pretrained in
that tokenizer). ``control.yaml`` lists one more teacher, ``python-code-control``: the shared world's
``python-code`` teacher, of the same size as this world's, trained on the same corpus with the student's
tokenizer; it measures what distilling across tokenizers keeps of same-tokenizer distillation.

Built once into ``$XDISTILL_HOME/lm-xtok-world-v<N>`` (a temporary folder renamed when complete, each teacher
a resumable job), after the shared world it borrows from.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from xdistill.demo import lm_world
from xdistill.demo.lm_world import DOMAINS, LMWorld, corpus
from xdistill.home import xdistill_home
from xdistill.io import atomic_write_text

RECIPE_VERSION = 1
# Each teacher's tokenizer: (kind, size), trained on the teacher's own corpus.
TOKENIZERS = {"python-code": ("bpe", 1024), "english-docs": ("unigram", 1536), "cpp-headers": ("bytes", 257)}
CONTROL = "python-code-control"  # the shared world's python-code teacher: the student's tokenizer


class XTokWorld(LMWorld):
    @property
    def control_zoo(self) -> Path:
        return self.root / "control.yaml"


def world_root(home: Path | None = None) -> Path:
    return (home or xdistill_home()) / f"lm-xtok-world-v{RECIPE_VERSION}"


def train_tokenizer(name: str, documents: list[str]):
    from xdistill.models.tokenizer import byte_tokenizer, train_bpe, train_unigram

    kind, size = TOKENIZERS[name]
    if kind == "bpe":
        return train_bpe(documents, size)
    if kind == "unigram":
        return train_unigram(documents, size)
    return byte_tokenizer()


def _recipe() -> dict:
    # As read back from recipe.json (tuples become lists), so an interrupted build recognises its own recipe.
    return json.loads(json.dumps({"recipe_version": RECIPE_VERSION, "tokenizers": TOKENIZERS,
                                  "shared": lm_world._recipe()}))


def build_xtok_world(home: Path | None = None, log: Callable[[str], None] | None = print,
                     workers: int | None = None) -> XTokWorld:
    """Build the world once (the shared LM world first, if needed; then three teachers, about 25 CPU-minutes);
    later calls return it as it is, and an interrupted build resumes with the teachers still to train."""
    from xdistill.models.tokenizer import load_tokenizer

    root = world_root(home)
    if (root / "world.json").is_file():
        lm_world.write_tasks(root, only_missing=True)
        return XTokWorld(root)
    say = log or (lambda message: None)
    building = root.with_name(root.name + ".building")
    recipe = _recipe()
    recipe_file = building / "recipe.json"
    if not (recipe_file.is_file() and json.loads(recipe_file.read_text()) == recipe):
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        atomic_write_text(recipe_file, json.dumps(recipe) + "\n")
    started = time.perf_counter()
    shared_recipe = recipe["shared"]
    jobs = []
    for name in DOMAINS:
        if (building / f"{name}.done.json").is_file():
            continue
        documents = corpus(name)
        path = building / "tokenizers" / f"{name}.json"
        if not path.is_file():
            atomic_write_text(path, train_tokenizer(name, documents).to_str())
        jobs.append((name, documents, building, load_tokenizer(path).to_str(), shared_recipe))
    workers = lm_world.BUILD_WORKERS if workers is None else workers
    say(f"LM cross-tokenizer world: training {', '.join(j[0] for j in jobs) or 'nothing'} ({workers} at a time) "
        f"into {building}")
    if workers > 1 and len(jobs) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for name, seconds in pool.imap_unordered(lm_world._train_model, jobs):
                say(f"LM cross-tokenizer world: {name} trained in {seconds:.0f} s")
    else:
        for job in jobs:
            lm_world._train_model(job)
    timings = {name: json.loads((building / f"{name}.done.json").read_text()) for name in DOMAINS}
    shared = lm_world.build_lm_world(home, log)
    shutil.copy(shared.tokenizer, building / "tokenizer.json")
    shutil.copy(shared.generic_student, building / "generic-student.safetensors")
    shutil.copytree(shared.root / "teachers" / "python-code", building / "teachers" / CONTROL, dirs_exist_ok=True)
    lm_world.write_tasks(building)
    lm_world.write_zoo(building)
    control = {"teachers": [{"name": CONTROL, "kind": "gpt", "path": f"teachers/{CONTROL}",
                             "domain": DOMAINS["python-code"] + " (the student's tokenizer)", "architecture": "gpt"}]}
    atomic_write_text(building / "control.yaml", yaml.safe_dump(control, sort_keys=False))
    lm_world.publish(building, root, recipe, timings)
    say(f"LM cross-tokenizer world built in {time.perf_counter() - started:.0f} s: {root}")
    return XTokWorld(root)
