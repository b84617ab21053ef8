"""``xdistill demo --world lm``: a language-model world built from text that ships with Python and torch.

Three teacher LMs (1.07 M parameters each, 4.5x the 0.24 M-parameter student), each trained once on a
different real corpus, one byte-level BPE tokenizer (2,048 ids) trained on their union and shared by
the teachers and every student, a generic student pretrained on that union (for ``finetune``), and
target tasks with a little training text:

| corpus / task | what it is (a fixed, sorted selection) | role |
|---|---|---|
| ``python-code`` | the standard library's top-level ``*.py`` modules, first 1.5 MB | teacher: Python source code |
| ``english-docs`` | ``pydoc_data.topics``, Python's reference documentation as plain text | teacher: English technical prose |
| ``cpp-headers`` | torch's ``include/c10/**/*.h`` headers, first 1.5 MB | teacher: C++ header files |
| ``stdlib-packages`` | the ``*.py`` modules of the ``email``, ``http``, ``json``, ``logging``, ``urllib`` and ``xml`` packages (none top-level, so none in python-code) | target: 40 KB train, 20 KB test |
| ``stdlib-tests`` | the standard library's test suite, ``test/test_*.py`` | target: 40 KB train, 20 KB test |
| ``idle-code`` | ``idlelib/*.py``, IDLE's source | a domain no teacher or target uses (rank check) |
| ``python-license`` | the standard library's ``LICENSE.txt`` | a domain no teacher or target uses (rank check) |
| ``numpy-headers`` | numpy's C API headers | a domain no teacher or target uses (rank check) |

Documents are files cut at line ends into pieces of at most 4 KB. The world is built once into
``$XDISTILL_HOME/lm-world-v<N>`` (a temporary folder renamed when complete) and reused afterwards.
"""

from __future__ import annotations

import json
import shutil
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from xdistill.errors import XDistillError
from xdistill.home import xdistill_home
from xdistill.io import atomic_write_text

RECIPE_VERSION = 2
DOCUMENT_BYTES = 4096
CORPUS_BYTES = 1_500_000
TARGET_TRAIN_BYTES, TARGET_TEST_BYTES = 40_000, 20_000
VOCAB_SIZE = 2048
STUDENT_KNOBS = {"d_model": 64, "n_layer": 2, "n_head": 4, "context": 128}
TEACHER_KNOBS = {"d_model": 128, "n_layer": 4, "n_head": 4, "context": 128}
TEACHER_STEPS = 1000  # 16 windows of 128 tokens a step: about 2 M tokens, 4-12 passes over a corpus
GENERIC_STEPS = 400
BUILD_WORKERS = 2  # teachers trained side by side (one torch thread each)
TARGETS = ("stdlib-packages", "stdlib-tests")
PROBES = ("idle-code", "python-license", "numpy-headers")
# Standard-library packages whose modules (none of them top-level, so none in the python-code corpus) make a target.
STDLIB_PACKAGES = ("email", "http", "json", "logging", "urllib", "xml")
DOMAINS = {"python-code": "Python source code", "english-docs": "English technical prose",
           "cpp-headers": "C++ header files"}
# What the demo's runs use (the bench reuses it): every method gets the same student, tokenizer and budget.
DISTILL = {"epochs": 12, "batch_size": 16, "lr": 3e-3, "weight_decay": 0.01, "kd_weight": 1.0, "label_weight": 1.0}


def stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def package_dir(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise XDistillError(f"The LM demo world reads text shipped with the '{name}' package, which is not installed.")
    return Path(spec.origin).parent


def read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")


def documents_of(texts: list[str], limit: int | None = None) -> list[str]:
    """Texts cut at line ends into documents of at most DOCUMENT_BYTES bytes, up to ``limit`` bytes in all."""
    out, total = [], 0
    for text in texts:
        piece = ""
        for line in text.splitlines(keepends=True):
            if piece and len((piece + line).encode()) > DOCUMENT_BYTES:
                out.append(piece)
                total += len(piece.encode())
                piece = ""
                if limit is not None and total >= limit:
                    return out
            piece += line
        if piece.strip():
            out.append(piece)
            total += len(piece.encode())
        if limit is not None and total >= limit:
            return out
    return out


def corpus(name: str) -> list[str]:
    """The documents of a source corpus or target domain (see the module docstring)."""
    lib = stdlib()
    if name == "python-code":
        return documents_of([read_text(p) for p in sorted(lib.glob("*.py"))], CORPUS_BYTES)
    if name == "english-docs":
        from pydoc_data.topics import topics

        return documents_of([topics[k] for k in sorted(topics)], CORPUS_BYTES)
    if name == "cpp-headers":
        return documents_of([read_text(p) for p in sorted((package_dir("torch") / "include" / "c10").rglob("*.h"))],
                            CORPUS_BYTES)
    if name == "stdlib-packages":
        return documents_of([read_text(p) for package in STDLIB_PACKAGES for p in sorted((lib / package).rglob("*.py"))])
    if name == "stdlib-tests":
        return documents_of([read_text(p) for p in sorted((lib / "test").glob("test_*.py"))], 400_000)
    if name == "idle-code":
        return documents_of([read_text(p) for p in sorted((lib / "idlelib").glob("*.py"))])
    if name == "numpy-headers":
        numpy = package_dir("numpy")
        include = next((p for p in (numpy / "_core" / "include" / "numpy", numpy / "core" / "include" / "numpy") if p.is_dir()))
        return documents_of([read_text(p) for p in sorted(include.glob("*.h"))])
    if name == "python-license":
        return documents_of([read_text(lib / "LICENSE.txt")])
    raise XDistillError(f"Unknown LM demo corpus '{name}'.")


def split_target(documents: list[str], train_bytes: int = TARGET_TRAIN_BYTES,
                 test_bytes: int = TARGET_TEST_BYTES) -> tuple[list[str], list[str]]:
    """Every other document to train and test until each has its bytes (train first), so both splits span the domain."""
    train, test, sizes = [], [], {"train": 0, "test": 0}
    for index, document in enumerate(documents):
        split, limit = ("train", train_bytes) if index % 3 != 2 else ("test", test_bytes)
        if sizes[split] < limit:
            (train if split == "train" else test).append(document)
            sizes[split] += len(document.encode())
        if sizes["train"] >= train_bytes and sizes["test"] >= test_bytes:
            break
    return train, test


@dataclass
class LMWorld:
    root: Path

    @property
    def zoo(self) -> Path:
        return self.root / "zoo.yaml"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer.json"

    @property
    def generic_student(self) -> Path:
        return self.root / "generic-student.safetensors"

    def task(self, name: str) -> Path:
        return self.root / "tasks" / name

    def manifest(self) -> dict:
        return json.loads((self.root / "world.json").read_text())


def world_root(home: Path | None = None) -> Path:
    return (home or xdistill_home()) / f"lm-world-v{RECIPE_VERSION}"


def write_tasks(root: Path, only_missing: bool = False) -> None:
    """The target and probe task folders (deterministic from the corpora, so a world gains any it lacks)."""
    from xdistill.kinds.language_modeling.task import write_lm_task

    for name in (*TARGETS, *PROBES):
        if only_missing and (root / "tasks" / name / "task.yaml").is_file():
            continue
        train, test = split_target(corpus(name))
        write_lm_task(root / "tasks" / name, name, train, test)


def _recipe() -> dict:
    return {"recipe_version": RECIPE_VERSION, "corpus_bytes": CORPUS_BYTES, "vocab_size": VOCAB_SIZE,
            "teacher_knobs": TEACHER_KNOBS, "student_knobs": STUDENT_KNOBS, "teacher_steps": TEACHER_STEPS,
            "generic_steps": GENERIC_STEPS}


def _train_model(job) -> tuple[str, float]:
    """Train and save one teacher, or the generic student (a process of its own when jobs run side by side).
    A finished job leaves ``<name>.done.json``, so an interrupted build resumes with the jobs still to do."""
    from xdistill.kinds.language_modeling.student import save_lm_file, save_lm_folder
    from xdistill.kinds.language_modeling.verbs import train_language_model
    from xdistill.models.tokenizer import tokenizer_from_string

    name, documents, building, tokenizer_text, recipe = job
    torch.set_num_threads(1)
    started, cpu = time.perf_counter(), time.process_time()
    tokenizer = tokenizer_from_string(tokenizer_text)
    if name == GENERIC:
        model = train_language_model(documents, tokenizer, recipe["student_knobs"], batch_size=16, lr=3e-3,
                                     steps=recipe["generic_steps"], progress=False, seed=2)
        save_lm_file(building / "generic-student.safetensors", model, tokenizer)
    else:
        model = train_language_model(documents, tokenizer, recipe["teacher_knobs"], batch_size=16, lr=4e-3,
                                     steps=recipe["teacher_steps"], progress=False, seed=1)
        save_lm_folder(building / "teachers" / name, model, tokenizer, {"context": recipe["teacher_knobs"]["context"],
                                                                         "domain": DOMAINS[name]})
    seconds = time.perf_counter() - started
    atomic_write_text(building / f"{name}.done.json",
                      json.dumps({"seconds": seconds, "cpu_seconds": time.process_time() - cpu}) + "\n")
    return name, seconds


GENERIC = "generic-student"


def build_lm_world(home: Path | None = None, log: Callable[[str], None] | None = print, progress: bool = True,
                   workers: int | None = None) -> LMWorld:
    """Build the world once (about 25 CPU-minutes: three teachers and the generic student, two at a time);
    later calls return it as it is, and an interrupted build resumes where it stopped."""
    from xdistill.models.tokenizer import load_tokenizer, train_bpe

    root = world_root(home)
    if (root / "world.json").is_file():
        write_tasks(root, only_missing=True)
        return LMWorld(root)
    building = root.with_name(root.name + ".building")
    recipe = _recipe()
    recipe_file = building / "recipe.json"
    if not (recipe_file.is_file() and json.loads(recipe_file.read_text()) == recipe):
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        atomic_write_text(recipe_file, json.dumps(recipe) + "\n")
    say = log or (lambda message: None)
    workers = BUILD_WORKERS if workers is None else workers
    started = time.perf_counter()
    sources = {name: corpus(name) for name in DOMAINS}
    if (building / "tokenizer.json").is_file():
        tokenizer = load_tokenizer(building / "tokenizer.json")
    else:
        tokenizer = train_bpe([d for docs in sources.values() for d in docs], VOCAB_SIZE)
        atomic_write_text(building / "tokenizer.json", tokenizer.to_str())
    pool_documents = [d for docs in sources.values() for d in docs]
    jobs = [(name, documents, building, tokenizer.to_str(), recipe)
            for name, documents in [*sources.items(), (GENERIC, pool_documents)]
            if not (building / f"{name}.done.json").is_file()]
    say(f"LM demo world: training {', '.join(j[0] for j in jobs) or 'nothing'} ({workers} at a time) into {building}")
    if workers > 1 and len(jobs) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for name, seconds in pool.imap_unordered(_train_model, jobs):
                say(f"LM demo world: {name} trained in {seconds:.0f} s")
    else:
        for job in jobs:
            _train_model(job)
    timings = {name: json.loads((building / f"{name}.done.json").read_text()) for name in [*DOMAINS, GENERIC]}
    write_tasks(building)
    write_zoo(building)
    publish(building, root, recipe, timings)
    say(f"LM demo world built in {time.perf_counter() - started:.0f} s: {root}")
    return LMWorld(root)


def write_zoo(building: Path) -> None:
    """The zoo of the domain teachers under ``building/teachers/``."""
    zoo = {"teachers": [{"name": name, "kind": "gpt", "path": f"teachers/{name}", "domain": domain,
                         "architecture": "gpt"} for name, domain in DOMAINS.items()]}
    atomic_write_text(building / "zoo.yaml", yaml.safe_dump(zoo, sort_keys=False))


def publish(building: Path, root: Path, recipe: dict, timings: dict) -> None:
    """Write the manifest, drop the per-job markers and put the finished ``building`` folder in place of ``root``."""
    manifest = {**recipe, "targets": list(TARGETS), "probes": list(PROBES), "seconds": timings,
                "python": sys.version.split()[0]}
    atomic_write_text(building / "world.json", json.dumps(manifest, indent=2) + "\n")
    for marker in building.glob("*.done.json"):
        marker.unlink()
    if root.exists():
        shutil.rmtree(root)
    building.rename(root)


def export_lm_world(world: LMWorld, folder: Path) -> Path:
    """Copy the world's zoo, teachers, tokenizer, generic student and tasks to ``folder``."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise XDistillError(f"--export folder '{folder}' is not empty. Give a new or empty folder.")
    shutil.copytree(world.root, folder, dirs_exist_ok=True)
    return folder


def distill_config(world: LMWorld, target: str, method: str, seed: int, out: Path, cache_dir: str = "",
                   **overrides):
    """The config of one demo run: the same student, tokenizer and budget for every method."""
    from xdistill.train.config import DistillConfig, StudentConfig

    values = {**DISTILL, **overrides}
    # finetune and the teacher methods start from the generic student; supervised starts from scratch.
    init = "" if method == "supervised" else str(world.generic_student)
    return DistillConfig(task=str(world.task(target)), zoo=str(world.zoo), method=method, seed=seed, out=str(out),
                         cache_dir=cache_dir, tokenizer="" if init else str(world.tokenizer), init=init,
                         student=StudentConfig("gpt", {} if init else dict(STUDENT_KNOBS)), progress=False, **values)


def run_lm_demo(export: Path | None = None, home: Path | None = None, out: Path | None = None, quick: bool = False,
                seeds: tuple[int, ...] = (0,), log: Callable[[str], None] | None = print,
                world: LMWorld | None = None, runs: str = "lm-demo-runs") -> dict:
    """Build the world (or take ``world``, built), then run every method on every target and print bits per byte
    (lower is better)."""
    from xdistill.kinds.language_modeling.methods import METHODS
    from xdistill.pipeline.distill import distill
    from xdistill.report.console import print_table

    world = world or build_lm_world(home, log)
    if export is not None:
        export_lm_world(world, export)
        if log:
            log(f"exported the LM demo world to {export}")
        return {}
    out = Path(out) if out is not None else (home or xdistill_home()) / runs
    methods = [n for n, m in METHODS.items() if m.baseline] + [n for n, m in METHODS.items() if not m.baseline]
    results: dict = {}
    for target in TARGETS[:1] if quick else TARGETS:
        rows = []
        for method in methods:
            for seed in seeds:
                folder = out / target / f"{method}-s{seed}"
                metrics_path = folder / "metrics.json"
                if metrics_path.is_file():
                    metrics = json.loads(metrics_path.read_text())
                else:
                    extra = {"epochs": 3} if quick else {}
                    metrics = distill(distill_config(world, target, method, seed, folder, **extra)).metrics
                results.setdefault(target, {}).setdefault(method, []).append(metrics)
            scores = [m["test"]["bits_per_byte"] for m in results[target][method]]
            rows.append([method, sum(scores) / len(scores), results[target][method][0]["params"]])
        print_table(f"{target}: test bits per byte (lower is better)", ["method", "bits/byte", "params"], rows)
    return results
