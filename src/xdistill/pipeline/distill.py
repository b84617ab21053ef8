"""``xdistill distill``: task + zoo -> ranked, bridged teachers -> trained
student -> student files, metrics and report in one output folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from xdistill import __version__
from xdistill.cache.extract import TeacherCache, cache_task
from xdistill.config import to_dict
from xdistill.data.task import Task, load_task
from xdistill.errors import XDistillError, join_problems
from xdistill.eval.predict import cpu_latency_per_sample_ms, evaluate_split
from xdistill.home import default_cache_dir
from xdistill.io import atomic_write_json, atomic_write_text, load_weights, read_safetensors
from xdistill.select.bridge import BridgeHead
from xdistill.select.metrics import METRICS
from xdistill.select.prepare import PREPARATIONS
from xdistill.select.rank import Ranking, rank_teachers
from xdistill.students import STUDENTS, build_student, count_flops, count_params
from xdistill.students.io import adapt_state_dict, save_student
from xdistill.teachers.base import Teacher
from xdistill.teachers.zoo import load_zoo
from xdistill.train.config import DistillConfig
from xdistill.train.inputs import StudentInputs
from xdistill.train.loop import History, steps_per_epoch, train_student
from xdistill.train.methods import METHODS, StepContext
from xdistill.train.targets import TeacherTargets, build_targets

LOGIT_LOSSES = ("kd", "reverse_kl", "js", "dkd", "taid", "bdkd")
FEATURE_LOSSES = ("feature_mse", "feature_cosine")


@dataclass
class DistillResult:
    student: nn.Module
    metrics: dict[str, Any]
    history: History
    out: Path | None = None
    ranking: Ranking | None = None
    targets: TeacherTargets | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def config_problems(config: DistillConfig, task_given: bool = False, teachers_given: bool = False) -> list[str]:
    """Every problem with a distill config, found before anything heavy runs."""
    problems = []
    method = METHODS.get(config.method) if config.method in METHODS else None
    if method is None:
        problems.append(METHODS.unknown_message(config.method))
    if config.loss not in LOGIT_LOSSES:
        problems.append(f"'loss' must be one of {', '.join(LOGIT_LOSSES)}. Got {config.loss!r}.")
    if config.feature_loss not in FEATURE_LOSSES:
        problems.append(f"'feature_loss' must be one of {', '.join(FEATURE_LOSSES)}. Got {config.feature_loss!r}.")
    if config.student.name not in STUDENTS:
        problems.append(STUDENTS.unknown_message(config.student.name))
    if config.metric not in METRICS:
        problems.append(METRICS.unknown_message(config.metric))
    if config.prepare not in PREPARATIONS:
        problems.append(PREPARATIONS.unknown_message(config.prepare))
    if not task_given and not config.task:
        problems.append("No task given. Pass --task DIR (a folder holding task.yaml).")
    if method is not None and method.uses_teachers and not teachers_given and not config.zoo:
        problems.append(f"Method '{config.method}' distills teachers, so it needs --zoo FILE.")
    if method is not None and method.uses_init:
        if not config.init:
            problems.append(f"Method '{config.method}' starts from a generic pretrained student: pass init=FILE.safetensors.")
        elif not Path(config.init).is_file():
            problems.append(f"'init' file '{config.init}' does not exist.")
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        problems.append(f"device '{config.device}' was asked for but CUDA is not available. Use device=cpu.")
    if config.resume and not config.out:
        problems.append("--resume needs --out, the folder of the interrupted run.")
    return problems


def _student_inputs(task: Task) -> StudentInputs:
    if task.input == "text":
        from xdistill.students.tokenize import fit_tokenizer

        return StudentInputs("text", fit_tokenizer(task))
    return StudentInputs(task.input)


# The student input kind each task input becomes (see xdistill.students.build.INPUT_KINDS).
_STUDENT_INPUT = {"image": "image", "features": "vector", "text": "tokens"}


def _check_student_reads(config: DistillConfig, task: Task) -> None:
    """Refuse, before any teacher runs, a student family that cannot read the task's inputs."""
    family = STUDENTS.get(config.student.name)
    needed = _STUDENT_INPUT[task.input]
    if needed not in family.inputs:
        fitting = [name for name, f in STUDENTS.items() if needed in f.inputs]
        raise XDistillError(
            f"Student '{family.name}' reads {', '.join(family.inputs)} inputs, but task '{task.name}' has "
            f"{task.input} inputs. Choose one of: {', '.join(fitting)} (--student NAME)."
        )


def _build_student(config: DistillConfig, task: Task, inputs: StudentInputs, student: nn.Module | None) -> nn.Module:
    torch.manual_seed(config.seed)
    if student is not None:
        return student
    knobs = dict(config.student.knobs)
    shape = task.input_shape
    if task.input == "text":
        knobs.setdefault("vocab_size", inputs.tokenizer.vocab_size)
        shape = (inputs.tokenizer.max_length,)
    model = build_student(config.student.name, shape, task.num_classes, **knobs)
    if config.init:
        state = read_safetensors(config.init, "The 'init' file", "Give the generic student's .safetensors state dict.")
        load_weights(model, adapt_state_dict(state, model), f"The 'init' file '{config.init}'",
                     f"student '{config.student.name}'", "Pretrain the generic student with the same architecture.")
    return model


def _teachers(config: DistillConfig, teachers: list[Teacher] | None) -> tuple[list[Teacher], dict]:
    if teachers is not None:
        return teachers, {}
    zoo = load_zoo(config.zoo).select(config.teachers or None)
    return zoo.teachers(config.device), {s.name: s for s in zoo.specs}


def _online_targets(targets: TeacherTargets, teachers: list[Teacher], method: str):
    """Run the method's teachers live on the student's augmented batch (``--online``)."""
    from xdistill.select.bridge import bridge_inputs
    from xdistill.train.targets import combine

    by_name = {t.name: t for t in teachers}

    def run(raw_images: torch.Tensor, index: np.ndarray):
        probs, feats = [], {}
        for name in targets.names:
            out = by_name[name].outputs(raw_images)
            f = None if out.features is None else out.features.numpy()
            logits = None if out.logits is None else out.logits.numpy()
            probs.append(targets.heads[name].predict_proba(bridge_inputs(f, logits)[0]))
            if f is not None:
                feats[name] = f
        return combine(np.stack(probs), method, targets.weights, targets.mix).astype(np.float32), feats

    return run


def distill(config: DistillConfig, task: Task | None = None, teachers: list[Teacher] | None = None,
            student: nn.Module | None = None, log: Callable[[str], None] | None = print,
            ranking: Ranking | None = None, heads: dict[str, BridgeHead] | None = None,
            rank: int = 0, world_size: int = 1, wrap: Callable[[nn.Module], nn.Module] | None = None,
            write_report: bool = True) -> DistillResult:
    """Train a student on ``config.task`` with ``config.method``; write outputs to ``config.out``."""
    problems = config_problems(config, task is not None, teachers is not None)
    if problems:
        raise XDistillError(join_problems(problems, "Invalid distill config"))
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    started = time.perf_counter()
    task = task if task is not None else load_task(config.task)
    method = METHODS.get(config.method)
    out = Path(config.out) if config.out else None
    if out is not None and not config.resume and (out / "checkpoint.safetensors").exists():
        raise XDistillError(
            f"'{out}' already holds a run (checkpoint.safetensors). Pass --resume to continue it, or choose another --out."
        )
    if student is None:
        _check_student_reads(config, task)
    inputs = _student_inputs(task)
    info = log if (log is not None and rank == 0) else None
    ctx = StepContext(config=config, num_classes=task.num_classes)
    targets = None
    all_teachers: list[Teacher] = []
    if method.uses_teachers:
        all_teachers, specs = _teachers(config, teachers)
        cache = TeacherCache(Path(config.cache_dir) if config.cache_dir else default_cache_dir(),
                             augment_seed=config.augment_seed, progress=config.progress)
        cache_task(task, all_teachers, cache, views=config.views, log=info)
        if ranking is None:
            ranking = rank_teachers(task, all_teachers, cache, metric=config.metric, prepare=config.prepare,
                                    prepare_dim=config.prepare_dim, weight_temperature=config.weight_temperature,
                                    top_k=config.top_k, specs=specs, log=info)
        targets = build_targets(task, all_teachers, cache, ranking, config.method, views=config.views,
                                keep_features=config.feature_weight > 0, seed=config.seed, heads=heads, mix=config.mix,
                                log=info)
        ctx.targets = targets
        if config.online:
            ctx.online_targets = _online_targets(targets, all_teachers, config.method)
    model = _build_student(config, task, inputs, student)
    if method.uses_teachers and config.feature_weight > 0:
        from xdistill.losses import make_projector

        ctx.projectors = nn.ModuleDict({
            name: make_projector(model.feature_dim, feats["labeled"].shape[1])
            for name, feats in targets.features.items()
        })
    reference = None if targets is None else targets.combined["test"]

    def evaluate(m: nn.Module) -> dict:
        return evaluate_split(m, inputs, task, "test", reference, config.device)

    if info is not None:
        info(f"training {config.student.name} student with '{config.method}' for {config.epochs} epochs "
             f"x {steps_per_epoch(task, config)} steps")
    if out is not None and rank == 0:
        # atomic_write creates 'out' and turns an unwritable folder into a clear error.
        atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    history = train_student(model, method, ctx, task, inputs, config, out, evaluate, info, rank, world_size, wrap)
    result = DistillResult(model, {}, history, out, ranking, targets)
    if rank != 0:
        return result
    test = evaluate(model)
    shape = (inputs.tokenizer.max_length,) if task.input == "text" else task.input_shape
    dtype = torch.long if task.input == "text" else None
    sample = inputs.encode(task.test, np.arange(1))
    model_cpu = model.to("cpu")
    cost = {"params": count_params(model_cpu), "flops": count_flops(model_cpu, shape, dtype=dtype),
            "cpu_latency_ms_per_sample": cpu_latency_per_sample_ms(model_cpu, sample)}
    model.to(config.device)
    metrics = {
        "xdistill": __version__, "task": task.name, "method": config.method, "seed": config.seed,
        "test": test, "epoch_reported": "last", "cost": cost, "curves": history.to_json(),
        "teachers": targets.summary() if targets is not None else None,
        "ranking": ranking.to_json() if ranking is not None else None,
        "seconds": time.perf_counter() - started,
    }
    if targets is not None:
        metrics["teacher_targets_test_accuracy"] = float((targets.combined["test"].argmax(1) == task.test.y).mean())
        for i, name in enumerate(targets.names):
            accuracy = float((targets.per_teacher["test"][i].argmax(1) == task.test.y).mean())
            metrics["teachers"]["teachers"][name]["test_accuracy"] = accuracy
    result.metrics = metrics
    if out is not None:
        meta = {
            "architecture": {"name": config.student.name, "knobs": dict(config.student.knobs), "input_shape": list(shape),
                             "num_classes": task.num_classes},
            "classes": list(task.classes), "task": task.name, "preprocessing": inputs.preprocessing(),
            "config": to_dict(config), "xdistill": __version__,
        }
        save_student(out, model_cpu if config.device == "cpu" else model.to("cpu"), meta)
        atomic_write_json(out / "metrics.json", metrics)
        if write_report:
            try:
                from xdistill.report.run import write_run_report
            except ImportError:
                write_run_report = None
            if write_run_report is not None:
                write_run_report(out, metrics)
    if info is not None:
        info(f"test accuracy {test['accuracy']:.4f} (macro F1 {test['macro_f1']:.4f}, ECE {test['ece']:.4f}); "
             f"{cost['params']} params, {cost['flops']} FLOPs" + (f"; outputs in {out}" if out else ""))
    return result
