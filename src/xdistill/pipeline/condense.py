"""``xdistill condense``: a target task condensed into a few images per class, and ``xdistill eval`` of a
condensed folder.

    record = condense(CondenseConfig(task="tasks/t", method="dm", ipc=10, out="condensed/dm"))
    scores = evaluate_condensed("condensed/dm", EvalConfig())

Everything is checked before any teacher or network runs: the config's values, the method and label
names (with close matches), that the task holds images, that a zoo is given where teachers are needed,
and that every class has ``ipc`` real images (counting the pseudo-labeled pool where it is used).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import torch

from xdistill import __version__
from xdistill.cache.extract import TeacherCache
from xdistill.condense import CONDENSE_METHODS, CondenseConfig, methods_of
from xdistill.condense.config import HARD_LABELS
from xdistill.condense.context import CondenseContext
from xdistill.condense.evaluate import EvalConfig, baseline_results, condensed_results
from xdistill.condense.pool import labeled_pool, pool_problems, pseudo_label_accuracy, wants_pseudo, with_pseudo_labels
from xdistill.condense.store import RECORD, read_condensed, write_condensed
from xdistill.config import to_dict
from xdistill.data.task import Task
from xdistill.data.tensors import images_to_tensor
from xdistill.errors import ConfigError, XDistillError, join_problems
from xdistill.home import default_cache_dir
from xdistill.io import atomic_write_json
from xdistill.kinds import load_task
from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.prepare import PreparedTeachers, prepare_teachers
from xdistill.kinds.classification.targets import build_targets
from xdistill.students import STUDENTS
from xdistill.teachers.zoo import load_zoo
from xdistill.train.config import DistillConfig

COARSE_FEATURE_METHODS = ("herding", "kcenter")  # the image methods whose 'features' setting applies


def image_method(config: CondenseConfig) -> str:
    """The method that makes the images: the configured one, or random real images under a label method."""
    return config.method if CONDENSE_METHODS.get(config.method).role == "images" else "random"


def label_method(config: CondenseConfig) -> str:
    """The method that gives soft labels ('hard' for none)."""
    return config.method if CONDENSE_METHODS.get(config.method).role == "labels" else config.labels


def needs_teachers(config: CondenseConfig) -> list[str]:
    """Why this config needs the zoo (empty when it does not)."""
    reasons = []
    if label_method(config) != HARD_LABELS:
        reasons.append(f"soft labels from '{label_method(config)}'")
    if image_method(config) in COARSE_FEATURE_METHODS and config.features == "teacher":
        reasons.append(f"'{config.method}' in a teacher's feature space (features=teacher)")
    if config.pool == "pseudo":
        reasons.append("pool=pseudo (the teachers' pseudo-labels)")
    return reasons


def config_problems(config: CondenseConfig) -> list[str]:
    """Every problem with a condense config that can be found without reading the task."""
    problems = config.problems()
    if config.method not in CONDENSE_METHODS:
        problems.append(CONDENSE_METHODS.unknown_message(config.method))
    if config.labels != HARD_LABELS and config.labels not in methods_of("labels"):
        problems.append(f"'labels' must be {HARD_LABELS} or a label method ({', '.join(methods_of('labels'))}). "
                        f"Got {config.labels!r}.")
    if (config.method in CONDENSE_METHODS and CONDENSE_METHODS.get(config.method).role == "labels"
            and config.labels != HARD_LABELS):
        problems.append(f"'{config.method}' is itself a label method; leave 'labels' at {HARD_LABELS} "
                        f"(or pass --method IMAGES labels={config.method}).")
    if config.embedder not in STUDENTS:
        problems.append(STUDENTS.unknown_message(config.embedder))
    elif "image" not in STUDENTS.get(config.embedder).inputs:
        problems.append(f"'embedder' must be a student family that reads images. Got {config.embedder!r}.")
    if not problems and needs_teachers(config) and not config.zoo:
        problems.append(f"{' and '.join(needs_teachers(config))} need(s) the teachers: pass --zoo FILE.")
    if not config.task:
        problems.append("No task given. Pass --task DIR (a folder holding task.yaml).")
    if not config.out:
        problems.append("No output folder given. Pass --out DIR.")
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        problems.append(f"device '{config.device}' was asked for but CUDA is not available. Use device=cpu.")
    return problems


def task_problems(task: Task) -> list[str]:
    if getattr(task, "kind", "classification") != "classification" or getattr(task, "input", None) != "image":
        what = f"{task.kind} task" if getattr(task, "kind", "classification") != "classification" else \
            f"task with {task.input} inputs"
        return [f"condense makes synthetic images, so it needs an image classification task; '{task.name}' is a "
                f"{what}. Choose an image task."]
    return []


def prepare(config: CondenseConfig, task: Task, log: Callable[[str], None] | None) -> PreparedTeachers:
    """The zoo cached and ranked on the task, through the one preparation path every verb shares."""
    teachers = load_zoo(config.zoo).select(config.teachers or None).teachers(config.device)
    cache = TeacherCache(Path(config.cache_dir) if config.cache_dir else default_cache_dir(), progress=config.progress)
    return prepare_teachers(task, teachers, cache, DistillConfig().selection, log=log)


def condense(config: CondenseConfig, log: Callable[[str], None] | None = None, task: Task | None = None) -> dict:
    """Condense ``config.task`` (or ``task``) and write the condensed folder ``config.out``; returns condense.json."""
    problems = config_problems(dataclasses.replace(config, task=config.task or ("given" if task else "")))
    if problems:
        raise ConfigError(join_problems(problems, "Invalid condense config"))
    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    task = task if task is not None else load_task(config.task)
    problems = task_problems(task)
    if problems:
        raise XDistillError(join_problems(problems, "Cannot condense"))
    pool = labeled_pool(task)
    use_pseudo = wants_pseudo(config, task)
    if not use_pseudo:  # refuse an impossible ipc before any teacher runs
        problems = pool_problems(pool, task, config.ipc)
        if problems:
            raise XDistillError(join_problems(problems, "Cannot condense"))
    prepared = prepare(config, task, log) if (needs_teachers(config) or use_pseudo) else None
    if use_pseudo:
        weighted = METHODS.get("weighted")
        targets = build_targets(task, prepared, "weighted", weighted, DistillConfig(), log=log)
        accuracy, measured_on = pseudo_label_accuracy(task, prepared, targets, config)
        pool = with_pseudo_labels(pool, task, config, targets.combined["unlabeled"], accuracy, log, measured_on)
        problems = pool_problems(pool, task, config.ipc)
        if problems:
            raise XDistillError(join_problems(problems, "Cannot condense"))
    context = CondenseContext(config, task, pool, prepared, log)
    torch.manual_seed(config.seed)
    images_by = image_method(config)
    made = CONDENSE_METHODS.get(images_by).make(context)
    labels_by = label_method(config)
    soft = None if labels_by == HARD_LABELS else CONDENSE_METHODS.get(labels_by).make(context, made.x)
    method = CONDENSE_METHODS.get(images_by)
    record = {
        "xdistill": __version__, "task": task.name, "classes": list(task.classes), "method": config.method,
        "images": images_by, "labels": labels_by, "ipc": config.ipc, "seed": config.seed,
        "iterations": made.record.get("iterations", 0), "images_learned": method.lr_images > 0,
        "pool": {"images": len(pool), "pseudo_labeled": pool.pseudo, "note": pool.note},
        "settings": to_dict(config), "record": made.record, "images_per_class": config.ipc,
        "shape": list(made.x.shape), "soft_labels": soft is not None,
        "seconds": time.perf_counter() - started,
    }
    write_condensed(Path(config.out), made.x, made.y, soft, record, task.num_classes)
    if log is not None:
        log(f"condensed '{task.name}' with {config.method} into {len(made.y)} images ({config.ipc} per class"
            f"{', soft labels from ' + labels_by if soft is not None else ''}) in {record['seconds']:.1f}s: {config.out}")
    return record


def evaluate_condensed(folder: str | Path, config: EvalConfig, task_dir: str | Path | None = None,
                       log: Callable[[str], None] | None = None) -> dict:
    """Score a condensed folder with the fixed recipe (see :mod:`xdistill.condense.evaluate`); writes eval.json
    into the folder and returns it."""
    folder = Path(folder)
    problems = config.problems()
    if config.student not in STUDENTS:
        problems.append(STUDENTS.unknown_message(config.student))
    elif "image" not in STUDENTS.get(config.student).inputs:
        problems.append(f"'student' must be a family that reads images. Got {config.student!r}.")
    if problems:
        raise ConfigError(join_problems(problems, "Invalid condensed-set evaluation"))
    first = read_condensed(folder)
    task_dir = task_dir or first.record.get("settings", {}).get("task")
    if not task_dir:
        raise XDistillError(f"'{folder / RECORD}' does not say which task was condensed. Pass --task DIR.")
    task = load_task(task_dir)
    problems = task_problems(task)
    if problems:
        raise XDistillError(join_problems(problems, "Cannot evaluate"))
    condensed = read_condensed(folder, list(task.classes), tuple(task.labeled.x.shape[1:]))
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    ipc = int(condensed.record.get("ipc", max(1, len(condensed.y) // task.num_classes)))
    baselines = baseline_results(task, ipc, config) if config.baselines else None
    results = condensed_results(images_to_tensor(condensed.x), condensed.y, condensed.soft, task, config, baselines, log)
    report = {"kind": "condensed", "task": task.name, "method": condensed.record.get("method"),
              "labels": condensed.record.get("labels"), "ipc": ipc, "recipe": to_dict(config), **results,
              "test": {"accuracy": results["condensed_hard"]["accuracy_mean"]},
              "seconds": time.perf_counter() - started}
    atomic_write_json(folder / "eval.json", report)
    return report
