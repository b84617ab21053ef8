"""The classification kind: images, feature vectors or texts labelled with one
of C classes; teachers from any label space are bridged to the target classes.

Registered as ``classification``, the default kind of a ``task.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from xdistill.data.task import Task, load_task
from xdistill.kinds.classification.evaluate import evaluate_run
from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.prepare import prepare_teachers
from xdistill.kinds.classification.run import distill_classification, resolve_student
from xdistill.kinds.registry import KINDS, TaskKind
from xdistill.losses import LOSSES, losses_consuming
from xdistill.losses.common import takes_weights
from xdistill.select.config import AUTO_METRIC
from xdistill.select.metrics import METRICS
from xdistill.select.prepare import PREPARATIONS
from xdistill.students import STUDENTS
from xdistill.train.config import DistillConfig

# What a distillation step can hand a loss (xdistill.losses.STEP_INPUTS): logit losses get the first
# six (exit_logits: the exit branches of the ofa loss), feature losses the features, the projector, the labels and the teacher's class means.
LOGIT_INPUTS = frozenset({"student_logits", "teacher_probs", "target_probs", "labels", "temperature", "exit_logits"})
FEATURE_INPUTS = frozenset({"student_features", "teacher_features", "projector", "labels", "teacher_class_means"})


def config_problems(config: DistillConfig, task: Task | None = None, teachers_given: bool = False) -> list[str]:
    """Every problem with a classification distill config, found before anything heavy runs."""
    problems = config.problems()
    method = METHODS.get(config.method) if config.method in METHODS else None
    if method is None:
        problems.append(METHODS.unknown_message(config.method))
    for key, inputs, needed in (("loss", LOGIT_INPUTS, "student_logits"),
                                ("feature_loss", FEATURE_INPUTS, "student_features")):
        fitting = losses_consuming(inputs, needed)
        if getattr(config, key) not in fitting:
            problems.append(f"'{key}' must be one of {', '.join(fitting)}. Got {getattr(config, key)!r}.")
    if config.student.name and config.student.name not in STUDENTS:
        problems.append(STUDENTS.unknown_message(config.student.name))
    elif (config.student.name and config.loss in LOSSES and "exit_logits" in LOSSES.get(config.loss).consumes
          and not STUDENTS.get(config.student.name).stages):
        staged = ", ".join(name for name, family in STUDENTS.items() if family.stages)
        problems.append(f"'loss={config.loss}' trains exit branches after the student's intermediate stages, and "
                        f"student '{config.student.name}' has no stages. Use a student with stages: {staged}.")
    problems += _alignment_problems(config)
    if config.metric != AUTO_METRIC and config.metric not in METRICS:
        problems.append(METRICS.unknown_message(config.metric) + f" Or '{AUTO_METRIC}', the default.")
    if config.prepare not in PREPARATIONS:
        problems.append(PREPARATIONS.unknown_message(config.prepare))
    if task is None and not config.task:
        problems.append("No task given. Pass --task DIR (a folder holding task.yaml).")
    if method is not None:
        problems += _method_problems(config, method, teachers_given)
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        problems.append(f"device '{config.device}' was asked for but CUDA is not available. Use device=cpu.")
    if config.resume and not config.out:
        problems.append("--resume needs --out, the folder of the interrupted run.")
    return problems


def _alignment_problems(config: DistillConfig) -> list[str]:
    """A layout projector (config 'projector') reads one of the student's stages through a feature loss's projector."""
    if config.projector == "linear":
        return []
    problems = []
    if config.feature_weight <= 0:
        problems.append(f"'projector={config.projector}' maps the student to the teachers' features, which only "
                        f"feature distillation uses. Set feature_weight > 0 (e.g. 1) or leave projector=linear.")
    if config.feature_loss in LOSSES and "projector" not in LOSSES.get(config.feature_loss).consumes:
        with_projector = [n for n in losses_consuming(FEATURE_INPUTS, "student_features")
                          if "projector" in LOSSES.get(n).consumes]
        problems.append(f"'projector={config.projector}' needs a feature loss that takes a projector; "
                        f"'{config.feature_loss}' does not. Choose one of {', '.join(with_projector)}.")
    if config.student.name in STUDENTS and not STUDENTS.get(config.student.name).stages:
        staged = ", ".join(name for name, family in STUDENTS.items() if family.stages)
        problems.append(f"'projector={config.projector}' reads one of the student's stages, and student "
                        f"'{config.student.name}' has no stages. Use projector=linear or a student with stages: "
                        f"{staged}.")
    return problems


def _partner_problems(config: DistillConfig) -> list[str]:
    from xdistill.kinds.classification.collaborative import default_partner

    partner = config.partner or default_partner(config.student.name)
    problems = []
    if partner not in STUDENTS:
        problems.append(STUDENTS.unknown_message(partner) + " (config 'partner')")
    elif config.student.name in STUDENTS and not set(STUDENTS.get(partner).inputs) & set(
            STUDENTS.get(config.student.name).inputs):
        problems.append(f"'partner={partner}' reads {', '.join(STUDENTS.get(partner).inputs)} inputs and student "
                        f"'{config.student.name}' reads {', '.join(STUDENTS.get(config.student.name).inputs)}: both "
                        f"students see the same batch. Choose a partner that reads the same inputs.")
    if config.kd_augment != "none":
        problems.append(f"Method '{config.method}' shows both students the same views; 'kd_augment="
                        f"{config.kd_augment}' is not supported with it. Leave kd_augment=none.")
    return problems


def _method_problems(config: DistillConfig, method, teachers_given: bool) -> list[str]:
    problems = []
    if method.teachers and not teachers_given and not config.zoo:
        problems.append(f"Method '{config.method}' distills teachers, so it needs --zoo FILE.")
    if method.init == "required" and not config.init:
        problems.append(f"Method '{config.method}' starts from a generic pretrained student: make one with "
                        "`xdistill pretrain --task DIR --out FILE.safetensors` (or --images DIR), then pass init=FILE.")
    if method.teachers and config.pool_weights and config.loss in LOSSES and not takes_weights(config.loss):
        problems.append(f"Loss '{config.loss}' takes no per-sample weights, which 'pool_weights' needs. Choose "
                        f"another loss or pass pool_weights=false.")
    if method.partner:
        problems += _partner_problems(config)
    elif config.partner:
        problems.append(f"'partner={config.partner}' names the second student of a method that trains two "
                        f"(collaborative); method '{config.method}' trains one. Remove partner= or use "
                        f"method=collaborative.")
    if config.init and not Path(config.init).is_file():
        problems.append(f"'init' file '{config.init}' does not exist.")
    return problems


KINDS.register("classification", TaskKind(
    summary="images, feature vectors or texts labelled with one of C classes",
    splits=("labeled", "unlabeled", "test"),
    teacher_outputs={"features": "[N, D] float32", "logits": "[N, C_teacher] float32, when the teacher has them"},
    headline="accuracy",
    methods=METHODS,
    metrics=METRICS,
    load=load_task,
    prepare=prepare_teachers,
    distill=distill_classification,
    evaluate=evaluate_run,
    config_problems=config_problems,
    resolve=resolve_student,
    students=STUDENTS.names,
    losses=lambda: losses_consuming(LOGIT_INPUTS, "student_logits"),
))
