"""``xdistill distill`` and ``xdistill eval`` for generation: the teacher from the zoo, the method's own training,
the run folder and its metrics.

A run folder holds ``config.yaml`` (the resolved config), ``student.json`` (the kind and how the student
samples), ``student/`` (the student as a denoiser folder), ``stages/<name>/`` (further students a method made,
e.g. progressive's halvings), ``metrics.json`` and ``samples.png`` (a grid: one row per class).

Budget defaults: ``batch_size`` and ``lr`` at the general defaults (16 and 1e-2, which suit classifiers)
mean the generation defaults, 32 images a step and the method's own learning rate (2e-4 for the methods that
fine-tune the whole student, 1e-3 for guidance's adapters); any other value is used as given.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch
import yaml

from xdistill.config import to_dict
from xdistill.errors import XDistillError
from xdistill.io import atomic_write_json, atomic_write_text
from xdistill.kinds.generation.flow import to_model_space
from xdistill.kinds.generation.methods import METHODS, MethodContext
from xdistill.kinds.generation.scoring import EVAL_SAMPLES, Scorer, member_scores
from xdistill.models.denoiser import load_denoiser, save_denoiser
from xdistill.students import count_params
from xdistill.train.config import DistillConfig
from xdistill.train.run import DistillResult

KIND = "generation"
BATCH_SIZE = 32  # the generation default of batch_size
_GENERAL = DistillConfig()


def generation_config_problems(config, task=None, teachers_given: bool = False) -> list[str]:
    problems = config.problems()
    method = METHODS.get(config.method) if config.method in METHODS else None
    if method is None:
        problems.append(METHODS.unknown_message(config.method))
    if config.student.name and config.student.name != "unet":
        problems.append(f"Generation students are 'unet' denoisers. Got student {config.student.name!r}; drop "
                        "--student or pass --student unet.")
    if task is None and not config.task:
        problems.append("No task given. Pass --task DIR (a folder holding task.yaml).")
    if method is not None and method.teachers and not teachers_given and not config.zoo:
        problems.append(f"Method '{config.method}' distills a diffusion teacher, so it needs --zoo FILE.")
    if config.init:
        problems.append("'init' is not read by generation methods: the student starts as a copy of the teacher, or "
                        "fresh when student.knobs are given. Drop init=.")
    if config.resume:
        problems.append("--resume is not available for generation runs; rerun without it.")
    return problems


def resolve_generation(config, task):
    student = dataclasses.replace(config.student, name=config.student.name or "unet")
    return dataclasses.replace(config, student=student,
                               batch_size=BATCH_SIZE if config.batch_size == _GENERAL.batch_size else config.batch_size,
                               lr=_method_lr(config) if config.lr == _GENERAL.lr else config.lr)


def _method_lr(config) -> float:
    return METHODS.get(config.method).default_lr if config.method in METHODS else config.lr


def diffusion_teacher(config, given):
    """The run's diffusion teacher (set up): the given one, or the first ``kind: diffusion`` entry of the zoo
    (``teachers=`` picks another)."""
    from xdistill.teachers.zoo import load_zoo

    teachers = given.teachers if given.teachers is not None else None
    if teachers is None:
        zoo = load_zoo(config.zoo).select(config.teachers or None)
        diffusion = [spec for spec in zoo.specs if spec.kind == "diffusion"]
        if not diffusion:
            raise XDistillError(f"The zoo '{config.zoo}' has no teacher of kind diffusion (found: "
                                f"{', '.join(s.kind for s in zoo.specs) or 'none'}). Add one, e.g. the generative "
                                "demo world's (xdistill demo --world gen --export DIR).")
        teachers = [zoo.select([diffusion[0].name]).teachers(config.device)[0]]
    teacher = teachers[0]
    teacher.setup()
    return teacher


def check_fit(denoiser, task) -> None:
    problems = []
    if denoiser.num_classes != len(task.classes):
        problems.append(f"the teacher draws {denoiser.num_classes} classes and task '{task.name}' has "
                        f"{len(task.classes)}")
    if tuple(denoiser.input_shape) != tuple(task.image_shape):
        problems.append(f"the teacher makes images of shape {tuple(denoiser.input_shape)} (C, H, W) and the task's are "
                        f"{tuple(task.image_shape)}")
    if problems:
        raise XDistillError(f"The teacher does not fit the task: {'; '.join(problems)}. Use a teacher trained on "
                            "images and classes like the task's.")


def save_samples_grid(path: Path, x: torch.Tensor, y: torch.Tensor, num_classes: int, per_class: int = 10) -> Path:
    """A PNG grid of samples [N, C, H, W] in [-1, 1]: one row per class, ``per_class`` samples a row."""
    from xdistill.kinds.generation.grids import write_grid

    rows = []
    for label in range(num_classes):
        chosen = x[y == label][:per_class]
        rows.append(chosen)
    return write_grid(path, rows)


def method_context(method, config, task, denoiser, log=None) -> MethodContext:
    """What ``method`` trains from under a resolved ``config``: the teacher's denoiser and the task's training
    images, or none of them for a data-free method (``real_images`` false), so it cannot read one."""
    train = task.splits["train"]
    x0, labels = to_model_space(train.x), torch.as_tensor(train.y).long()
    if not method.real_images(config):
        x0, labels = x0[:0], labels[:0]
    return MethodContext(teacher=denoiser, x0=x0, y=labels, config=config, guidance=config.guidance, steps=config.steps,
                         iterations=config.iterations, batch_size=config.batch_size, lr=config.lr,
                         teacher_steps=config.teacher_steps, log=log)


def distill_generation(config, task, given, runtime) -> DistillResult:
    method = METHODS.get(config.method)
    log = runtime.info
    started = time.perf_counter()
    out = Path(config.out) if config.out else None
    teacher = diffusion_teacher(config, given)
    check_fit(teacher.denoiser, task)
    config = dataclasses.replace(config, guidance=config.guidance or teacher.guidance,
                                 iterations=config.iterations or method.default_iterations,
                                 teacher_steps=config.teacher_steps or method.default_teacher_steps)
    if config.threads:
        torch.set_num_threads(config.threads)
    if out is not None:
        atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    ctx = method_context(method, config, task, teacher.denoiser, log)
    real_images = method.real_images(config)
    torch.manual_seed(config.seed)
    train_started, cpu_started = time.perf_counter(), time.process_time()
    distilled = method.train(ctx)
    train_seconds, train_cpu_seconds = time.perf_counter() - train_started, time.process_time() - cpu_started
    scorer = Scorer(task, "test", log=log)
    test, x, y = scorer.score(distilled.student, int(distilled.sampling["steps"]), float(distilled.sampling["guidance"]))
    stages = {}
    for name, (network, sampling) in distilled.stages.items():
        stages[name], sx, sy = scorer.score(network, int(sampling["steps"]), float(sampling["guidance"]))
        if out is not None:
            save_denoiser(out / "stages" / name, network, task.classes, dict(sampling))
            save_samples_grid(out / "stages" / name / "samples.png", sx, sy, len(task.classes))
    members = member_scores(scorer, distilled.student, x, y)
    metrics = {
        "kind": KIND, "task": task.name, "method": config.method, "seed": config.seed, "data_free": not real_images,
        "headline": {"key": "frechet_distance", "lower_is_better": True},
        "test": test, "params": count_params(distilled.student), "stages": stages,
        "teacher": {"name": teacher.name, "guidance": config.guidance, "steps": teacher.steps,
                    "params": count_params(teacher.denoiser)},
        "sampling": dict(distilled.sampling), "distilled_guidance": config.guidance,
        "iterations": config.iterations, "teacher_steps": config.teacher_steps, "batch_size": config.batch_size,
        "history": distilled.history, "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds, "seconds": time.perf_counter() - started,
        "classifier": scorer.judge_record,
        **({"members": members} if members else {}),
    }
    if out is not None and runtime.rank == 0:
        save_denoiser(out / "student", distilled.student, task.classes, dict(distilled.sampling))
        atomic_write_json(out / "student.json", {"kind": KIND, "sampling": dict(distilled.sampling),
                                                 "method": config.method, "data_free": not real_images})
        save_samples_grid(out / "samples.png", x, y, len(task.classes))
        atomic_write_json(out / "metrics.json", metrics)
    if log:
        log(f"{config.method}: Fréchet distance {test['frechet_distance']:.3f} at {test['steps']} steps "
            f"({test['network_evaluations']} network evaluations), class consistency {test['class_consistency']:.3f}")
    return DistillResult(distilled.student, metrics, None, out, None, None)


def load_generator(source: Path):
    """(network, sampling defaults {"steps", "guidance"}) of a generation run folder or a teacher folder."""
    from xdistill.teachers.diffusion import denoiser_format, load_denoiser_any

    source = Path(source)
    if (source / "student.json").is_file():
        sampling = json.loads((source / "student.json").read_text()).get("sampling", {})
        network, _ = load_denoiser(source / "student")
        return network, {"steps": int(sampling.get("steps", 4)), "guidance": float(sampling.get("guidance", 1.0))}
    if denoiser_format(source) is None:
        raise XDistillError(f"'{source}' is neither a generation run folder nor a diffusion teacher folder.")
    network, defaults = load_denoiser_any(source)
    return network, {"steps": int(defaults.get("steps", 50)), "guidance": float(defaults.get("guidance", 2.0))}


def evaluate_generation(run_dir: Path, task, split: str = "test", steps: int | None = None,
                        guidance: float | None = None, n: int = EVAL_SAMPLES) -> dict:
    """``xdistill eval RUN`` (or a teacher folder): the generation metrics of its samples against ``split``."""
    if split not in task.splits:
        raise XDistillError(f"Task '{task.name}' has no split '{split}'. Splits: {', '.join(task.splits)}.")
    network, sampling = load_generator(run_dir)
    check_fit(network, task)
    steps = steps or sampling["steps"]
    guidance = sampling["guidance"] if guidance is None else guidance
    scorer = Scorer(task, split, n=n)
    scores, x, y = scorer.score(network, steps, guidance)
    members = member_scores(scorer, network, x, y)
    return {"kind": KIND, "split": split, **scores, "params": count_params(network),
            **({"members": members} if members else {})}
