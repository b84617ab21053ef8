"""A classification run: task + zoo -> ranked, bridged teachers -> trained
student -> student files, metrics and report in one output folder."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from xdistill import __version__
from xdistill.cache.extract import TeacherCache
from xdistill.config import to_dict
from xdistill.data.prefetch import resolve_workers
from xdistill.data.task import Task
from xdistill.errors import XDistillError
from xdistill.eval.predict import cpu_latency_per_sample_ms, evaluate_split
from xdistill.home import default_cache_dir
from xdistill.io import atomic_write_json, atomic_write_text, load_weights, read_safetensors
from xdistill.kinds.classification.batches import BatchSource
from xdistill.kinds.classification.collaborative import PARTNER_FOLDER, StudentPair, default_partner
from xdistill.kinds.classification.exits import exit_branches, stage_shapes
from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.mixing import (
    UNINFORMATIVE_ALPHA,
    chosen_alpha,
    dual_head_of,
    held_out_scores,
    set_alpha,
)
from xdistill.kinds.classification.pool import read_outside_mask
from xdistill.kinds.classification.prepare import PreparedTeachers, prepare_teachers
from xdistill.kinds.classification.steps import FeaturesAndLogits, StepContext
from xdistill.kinds.classification.targets import TeacherTargets, build_targets
from xdistill.kinds.classification.trust import (
    Decision,
    above_chance,
    agreement_decision,
    held_out_decision,
    held_out_labels,
    probe_decision,
    rejoin_epoch,
    standing_decision,
    student_outputs,
)
from xdistill.runtime import Runtime
from xdistill.losses import LOSSES
from xdistill.students import STUDENTS, build_student, count_flops, count_params
from xdistill.students.dual_head import DUAL_HEAD
from xdistill.students.io import adapt_state_dict, save_student
from xdistill.teachers.zoo import load_zoo
from xdistill.train.config import DEFAULT_STUDENTS, DistillConfig, StudentConfig
from xdistill.train.inputs import StudentInputs
from xdistill.train.loop import TrainPlan, train_student
from xdistill.train.run import DistillInputs, DistillResult

# The student input kind each task input becomes (see xdistill.students.build.STUDENT_INPUTS).
STUDENT_INPUT = {"image": "image", "features": "vector", "text": "tokens"}


def resolve_student(config: DistillConfig, task: Task) -> DistillConfig:
    """The config with its student family filled in from the task's input when left empty."""
    if config.student.name:
        return config
    return dataclasses.replace(config, student=StudentConfig(DEFAULT_STUDENTS[task.input], dict(config.student.knobs)))


def check_student_reads(config: DistillConfig, task: Task, partner: bool = False) -> None:
    """Refuse, before any teacher runs, a student family (and the collaborative partner's) that cannot read the
    task's inputs."""
    needed = STUDENT_INPUT[task.input]
    fitting = [name for name, f in STUDENTS.items() if needed in f.inputs]
    for family, flag in [(STUDENTS.get(config.student.name), "--student NAME")] + (
            [(STUDENTS.get(partner_family(config)), "partner=NAME")] if partner else []):
        if needed not in family.inputs:
            raise XDistillError(f"Student '{family.name}' reads {', '.join(family.inputs)} inputs, but task "
                                f"'{task.name}' has {task.input} inputs. Choose one of: {', '.join(fitting)} ({flag}).")


def student_inputs(task: Task) -> StudentInputs:
    if task.input == "text":
        from xdistill.students.tokenize import fit_tokenizer

        return StudentInputs("text", fit_tokenizer(task))
    return StudentInputs(task.input)


def build_run_student(config: DistillConfig, task: Task, inputs: StudentInputs) -> nn.Module:
    """The configured student, from the generic pretrained weights in ``init`` when given."""
    torch.manual_seed(config.seed)
    knobs = dict(config.student.knobs)
    shape = task.input_shape
    if task.input == "text":
        knobs.setdefault("vocab_size", inputs.tokenizer.vocab_size)
        shape = (inputs.tokenizer.max_length,)
    model = build_student(config.student.name, shape, task.num_classes, **knobs)
    if config.init:
        state = read_safetensors(config.init, "The 'init' file", "Give the generic student's .safetensors state dict.")
        load_weights(model, adapt_state_dict(state, model), f"The 'init' file '{config.init}'",
                     f"student '{config.student.name}'", "Make it with `xdistill pretrain` for the same student.")
    return model


def partner_family(config: DistillConfig) -> str:
    """The collaborative partner's student family: config 'partner', or the default beside the run's student."""
    return config.partner or default_partner(config.student.name)


def build_partner(config: DistillConfig, task: Task, inputs: StudentInputs) -> nn.Module:
    """The collaborative method's second student, with its family's default knobs."""
    knobs, shape = {}, task.input_shape
    if task.input == "text":
        knobs["vocab_size"], shape = inputs.tokenizer.vocab_size, (inputs.tokenizer.max_length,)
    return build_student(partner_family(config), shape, task.num_classes, **knobs)


def partner_metrics(config: DistillConfig, task: Task, inputs: StudentInputs, partner: nn.Module,
                    targets: TeacherTargets | None) -> dict:
    """The partner's test scores and cost, as a run's metrics.json holds them."""
    reference = None if targets is None else targets.combined["test"]
    test = evaluate_split(partner, inputs, task, "test", reference, config.device)
    shape, dtype = _sample_shape(task, inputs)
    model_cpu = partner.to("cpu")
    cost = {"params": count_params(model_cpu), "flops": count_flops(model_cpu, shape, dtype=dtype),
            "cpu_latency_ms_per_sample": cpu_latency_per_sample_ms(model_cpu, inputs.encode(task.test, np.arange(1)))}
    partner.to(config.device)
    return {"xdistill": __version__, "kind": "classification", "task": task.name, "method": config.method,
            "role": "partner", "student": partner_family(config), "seed": config.seed, "test": test,
            "params": cost["params"], "epoch_reported": "last", "cost": cost}


def write_partner(out: Path, config: DistillConfig, task: Task, inputs: StudentInputs, partner: nn.Module,
                  metrics: dict) -> None:
    """The partner's weights, meta and metrics.json in ``out/partner``."""
    shape, _ = _sample_shape(task, inputs)
    meta = {"kind": "classification", "architecture": {"name": partner_family(config), "knobs": {},
                                                       "input_shape": list(shape), "num_classes": task.num_classes},
            "classes": list(task.classes), "task": task.name, "preprocessing": inputs.preprocessing(),
            "config": to_dict(config), "role": "partner", "xdistill": __version__}
    save_student(out / PARTNER_FOLDER, partner.to("cpu"), meta)
    partner.to(config.device)
    atomic_write_json(out / PARTNER_FOLDER / "metrics.json", metrics)


def prepare_for(config: DistillConfig, task: Task, given: DistillInputs, log) -> PreparedTeachers:
    """The run's teachers cached and ranked: the caller's preparation, or one made now."""
    if given.prepared is not None:
        return given.prepared
    teachers = given.teachers
    if teachers is None:
        teachers = load_zoo(config.zoo).select(config.teachers or None).teachers(config.device)
    cache = TeacherCache(Path(config.cache_dir) if config.cache_dir else default_cache_dir(),
                         augment_seed=config.augment_seed, progress=config.progress)
    return prepare_teachers(task, teachers, cache, config.selection, views=config.views, log=log)


def online_targets(targets: TeacherTargets, prepared: PreparedTeachers, config: DistillConfig):
    """Run the method's teachers live on the student's augmented batch (``--online``)."""
    from xdistill.select.bridge import bridge_inputs

    method = METHODS.get(config.method)

    def run(raw_images: torch.Tensor, index: np.ndarray):
        probs, feats = [], {}
        for name in targets.names:
            out = prepared.teacher(name).outputs(raw_images)
            f = None if out.features is None else out.features.numpy()
            logits = None if out.logits is None else out.logits.numpy()
            probs.append(targets.heads[name].predict_proba(bridge_inputs(f, logits)[0]))
            if f is not None:
                feats[name] = f
        return method.combine(np.stack(probs), targets.weights, config).astype(np.float32), feats

    return run


def projectors(config: DistillConfig, model: nn.Module, targets: TeacherTargets) -> nn.ModuleDict:
    """One projector per teacher with cached features, from the student to that teacher's width: linear on the
    pooled features, or a layout projector on the pooled features and a stage (config 'projector',
    :mod:`xdistill.losses.alignment`), its attention branch seeded apart from the run's stream."""
    from xdistill.losses import make_projector
    from xdistill.losses.alignment import branch_seed, layout_shape, make_layout_projector, read_stage

    if config.projector == "linear":
        return nn.ModuleDict({name: make_projector(model.feature_dim, feats["labeled"].shape[1])
                              for name, feats in targets.features.items()})
    shape = layout_shape(model.feature_dim, read_stage(config.projector, stage_shapes(model)))
    return nn.ModuleDict({name: make_layout_projector(config.projector, shape, feats["labeled"].shape[1],
                                                      seed=branch_seed(config.seed, index))
                          for index, (name, feats) in enumerate(targets.features.items())})


def training_plan(config: DistillConfig, task: Task, inputs: StudentInputs, model: nn.Module,
                  targets: TeacherTargets | None, prepared: PreparedTeachers | None) -> TrainPlan:
    """The loop's plan: the method's step, its batches, projectors for feature distillation, evaluation."""
    method = METHODS.get(config.method)
    ctx = StepContext(config=config, num_classes=task.num_classes, targets=targets)
    modules = {}
    feature_distillation = targets is not None and config.feature_weight > 0
    layout = config.projector if feature_distillation and config.projector != "linear" else None
    if feature_distillation:
        ctx.projectors = modules["projectors"] = projectors(config, model, targets)
    if targets is not None and config.online:
        ctx.online_targets = online_targets(targets, prepared, config)
    forward, exits = FeaturesAndLogits, None
    if targets is not None and "exit_logits" in LOSSES.get(config.loss).consumes:  # the ofa loss (exits.py)
        exits = modules["exits"] = exit_branches(model, task.num_classes)
    if exits is not None or layout is not None:
        forward = lambda student: FeaturesAndLogits(student, exits, projector=layout)  # noqa: E731
    if method.partner:  # collaborative: the partner student trains beside the run's student, in one step
        partner = modules["partner"] = build_partner(config, task, inputs)
        single = forward
        forward = lambda student: StudentPair(single(student), FeaturesAndLogits(partner))  # noqa: E731
    reference = None if targets is None else targets.combined["test"]
    source = BatchSource(task, inputs, method, config)
    before_epoch = None
    if targets is not None and config.anneal:
        before_epoch, source.labeled_pool = teachers_against_student(task, inputs, targets, ctx, config)
    return TrainPlan(step=method.step, context=ctx, steps_per_epoch=source.steps, batches=source.epoch,
                     forward=forward, modules=modules,
                     evaluate=lambda m: evaluate_split(m, inputs, task, "test", reference, config.device),
                     before_epoch=before_epoch,
                     loader_workers=resolve_workers(config.loader_workers, task.labeled.x, task.unlabeled.x))


def teachers_against_student(task: Task, inputs: StudentInputs, targets: TeacherTargets, ctx: StepContext,
                             config: DistillConfig):
    """The loop's per-epoch hook that weighs the teachers against the student and hands the decision to the
    step (see :mod:`xdistill.kinds.classification.trust`), and ``epoch -> labeled positions`` to train on."""
    reliability = targets.reliability
    if reliability is not None and not above_chance(reliability, task.num_classes, len(task.labeled)):
        ctx.decision = Decision(0.0, reliability, None, "chance")

        def uninformative(student: nn.Module, epoch: int, history: list[dict]) -> dict:
            dual = dual_head_of(student)
            if dual is not None:  # teachers without class information: the supervised head alone
                set_alpha(dual, UNINFORMATIVE_ALPHA)
                return {**ctx.decision.to_json(), "dual_head": {"alpha": UNINFORMATIVE_ALPHA, "source": "chance"}}
            return ctx.decision.to_json()

        return uninformative, None
    pool, held = held_out_labels(task.labeled.y, task.num_classes, config.seed)
    if len(held) and reliability is not None:
        held_inputs, rejoin = [inputs.encode(task.labeled, held)], rejoin_epoch(config.epochs)
        everyone = np.arange(len(task.labeled))

        def before_epoch(student: nn.Module, epoch: int, history: list[dict]) -> dict:
            made = [Decision.from_json(record["decisions"]) for record in history[:rejoin]]
            dual = dual_head_of(student)
            if epoch >= rejoin:  # the held-out labels are trained on now: the mean decision stands
                ctx.decision = standing_decision(made)
                record = {**ctx.decision.to_json(), "labels": "all"}
                if dual is not None:  # and the dual head's mixing weight is chosen from the held-out epochs
                    alpha, how = chosen_alpha([r["decisions"].get("dual_head") for r in history[:rejoin]])
                    set_alpha(dual, alpha)
                    record["dual_head"] = {"alpha": alpha, "source": how}
                return record
            extra = {}
            if epoch == 0:  # a fresh head: probe the starting features instead
                features, _ = student_outputs(student, inputs.encode_all(task.labeled), config.device)
                ctx.decision = probe_decision(features, task.labeled.y, reliability, task.num_classes,
                                              config.anneal_margin)
            else:
                features, probs = student_outputs(student, held_inputs, config.device)
                earlier = [d.held_out_accuracy for d in made if d.held_out_accuracy is not None]
                ctx.decision = held_out_decision(probs, task.labeled.y[held], earlier, reliability,
                                                 task.num_classes, config.anneal_margin)
                if dual is not None:
                    extra["dual_head"] = held_out_scores(dual, features, task.labeled.y[held], config.device)
            return {**ctx.decision.to_json(), "labels": "held out", **extra}

        return before_epoch, lambda epoch: everyone if epoch >= rejoin else pool
    labeled, unlabeled = inputs.encode_all(task.labeled), inputs.encode_all(task.unlabeled)

    def agreement_fallback(student: nn.Module, epoch: int, history: list[dict]) -> dict:
        ctx.decision = agreement_decision(student_outputs(student, labeled, config.device)[0], task.labeled.y,
                                          student_outputs(student, unlabeled, config.device)[0],
                                          targets.combined["unlabeled"], task.num_classes)
        return ctx.decision.to_json()

    return agreement_fallback, None


def distill_classification(config: DistillConfig, task: Task, given: DistillInputs, runtime: Runtime) -> DistillResult:
    """Train a student on a classification task with ``config.method``; write outputs to ``config.out``."""
    started = time.perf_counter()
    method = METHODS.get(config.method)
    if given.student is None:
        check_student_reads(config, task, partner=method.partner)
    if method.teachers and config.kd_augment != "none" and task.input != "image":
        raise XDistillError(f"'kd_augment={config.kd_augment}' mixes or augments images, but task '{task.name}' has "
                            f"{task.input} inputs. Leave kd_augment=none.")
    out = Path(config.out) if config.out else None
    if out is not None and not config.resume and (out / "checkpoint.safetensors").exists():
        raise XDistillError(
            f"'{out}' already holds a run (checkpoint.safetensors). Pass --resume to continue it, or choose another --out."
        )
    inputs = student_inputs(task)
    prepared = targets = None
    if method.teachers:
        prepared = prepare_for(config, task, given, runtime.info)
        targets = build_targets(task, prepared, config.method, method, config, log=runtime.info)
    model = given.student if given.student is not None else build_run_student(config, task, inputs)
    if method.student_head is not None:
        if not isinstance(getattr(model, "head", None), nn.Linear):
            raise XDistillError(f"Method '{config.method}' replaces the student's head, but this student has no "
                                f"'head' nn.Linear(feature_dim, classes). Give a student that has one.")
        model.head = method.student_head(model.head)
    plan = training_plan(config, task, inputs, model, targets, prepared)
    if runtime.info is not None:
        runtime.info(f"training {config.student.name or 'the given'} student with '{config.method}' for "
                     f"{config.epochs} epochs x {plan.steps_per_epoch} steps")
    if out is not None and runtime.rank == 0:
        # atomic_write creates 'out' and turns an unwritable folder into a clear error.
        atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    history = train_student(model, plan, config, out, runtime)
    result = DistillResult(model, {}, history, out, None if prepared is None else prepared.ranking, targets)
    if runtime.rank != 0:
        return result
    result.metrics = run_metrics(config, task, inputs, result, plan.evaluate(model))
    partner = plan.modules.get("partner") if method.partner else None
    if partner is not None:
        found = partner_metrics(config, task, inputs, partner, targets)
        result.metrics["partner"] = {"student": found["student"], "primary_student": config.student.name,
                                     "folder": PARTNER_FOLDER, "params": found["params"],
                                     "cost": found["cost"], "test": {k: found["test"][k] for k in
                                                                     ("accuracy", "macro_f1", "ece", "nll")}}
    result.metrics["seconds"] = time.perf_counter() - started
    if out is not None:
        if partner is not None:
            write_partner(out, config, task, inputs, partner, found)
        write_run(out, config, task, inputs, result, runtime.write_report)
    if runtime.info is not None:
        test, cost = result.metrics["test"], result.metrics["cost"]
        runtime.info(f"test accuracy {test['accuracy']:.4f} (macro F1 {test['macro_f1']:.4f}, ECE {test['ece']:.4f}); "
                     f"{cost['params']} params, {cost['flops']} FLOPs" + (f"; outputs in {out}" if out else ""))
    return result


def _sample_shape(task: Task, inputs: StudentInputs) -> tuple[tuple[int, ...], torch.dtype | None]:
    if task.input == "text":
        return (inputs.tokenizer.max_length,), torch.long
    return task.input_shape, None


def run_metrics(config: DistillConfig, task: Task, inputs: StudentInputs, result: DistillResult, test: dict) -> dict:
    """metrics.json of a finished run: test scores, cost, curves, teachers and ranking."""
    shape, dtype = _sample_shape(task, inputs)
    model_cpu = result.student.to("cpu")
    cost = {"params": count_params(model_cpu), "flops": count_flops(model_cpu, shape, dtype=dtype),
            "cpu_latency_ms_per_sample": cpu_latency_per_sample_ms(model_cpu, inputs.encode(task.test, np.arange(1)))}
    result.student.to(config.device)
    targets = result.targets
    metrics = {
        "xdistill": __version__, "kind": "classification", "task": task.name, "method": config.method,
        "seed": config.seed, "test": test, "params": cost["params"], "epoch_reported": "last", "cost": cost,
        "curves": result.history.to_json(), "teachers": targets.summary() if targets is not None else None,
        "ranking": result.ranking.to_json() if result.ranking is not None else None,
    }
    dual = dual_head_of(result.student)
    if dual is not None:
        chosen = [r["decisions"]["dual_head"] for r in result.history.epochs
                  if "alpha" in (r.get("decisions") or {}).get("dual_head", {})]
        metrics["dual_head"] = {"alpha": round(float(dual.alpha), 6),
                                "source": chosen[-1]["source"] if chosen else "default (no held-out labels)"}
    if targets is not None and targets.pool is not None:
        # The outside mask is read here, after training, only to show the weights each side got.
        metrics["pool_weights"] = targets.pool.summary(read_outside_mask(task))
    if targets is not None:
        metrics["teacher_targets_test_accuracy"] = float((targets.combined["test"].argmax(1) == task.test.y).mean())
        for i, name in enumerate(targets.names):
            accuracy = float((targets.per_teacher["test"][i].argmax(1) == task.test.y).mean())
            metrics["teachers"]["teachers"][name]["test_accuracy"] = accuracy
    return metrics


def write_run(out: Path, config: DistillConfig, task: Task, inputs: StudentInputs, result: DistillResult,
              write_report: bool) -> None:
    """The student's weights and meta, metrics.json and (optionally) report.html."""
    shape, _ = _sample_shape(task, inputs)
    meta = {
        "kind": "classification",
        "architecture": {"name": config.student.name, "knobs": dict(config.student.knobs), "input_shape": list(shape),
                         "num_classes": task.num_classes},
        "classes": list(task.classes), "task": task.name, "preprocessing": inputs.preprocessing(),
        "config": to_dict(config), "xdistill": __version__,
    }
    dual = dual_head_of(result.student)
    if dual is not None:
        meta["head"] = DUAL_HEAD
        meta["alpha"] = round(float(dual.alpha), 6)
    save_student(out, result.student.to("cpu"), meta)
    result.student.to(config.device)
    atomic_write_json(out / "metrics.json", result.metrics)
    if write_report:
        from xdistill.report.run import write_run_report

        write_run_report(out, result.metrics)
