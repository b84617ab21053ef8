"""``xdistill distill`` for language models: tokenizer, student, teacher targets, the one loop, metrics.

The student's tokenizer is, in order: ``tokenizer=FILE``; the ``init=`` file's; the top teacher's.
Every method on a target should get the same one, so that their bits per byte compare (they would
anyway: bits per byte do not depend on the tokenizer, but the student's capacity does).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from xdistill.config import to_dict
from xdistill.errors import XDistillError
from xdistill.io import atomic_write_json, atomic_write_text
from xdistill.kinds.language_modeling.cross_tokenizer import (
    CrossTokenizerTargets,
    align_targets,
    cross_tokenizer_step,
)
from xdistill.kinds.language_modeling.data import steps_per_epoch, token_stream, window_batches
from xdistill.kinds.language_modeling.methods import METHODS
from xdistill.kinds.language_modeling.prepare import language_models, prepare_lm, topk_cache_of
from xdistill.kinds.language_modeling.scoring import StudentLM, score_text
from xdistill.kinds.language_modeling.steps import StepContext, next_token_step
from xdistill.kinds.language_modeling.student import (
    build_lm_student,
    load_lm_file,
    network_of,
    save_lm_folder,
)
from xdistill.kinds.language_modeling.targets import check_alignment
from xdistill.kinds.language_modeling.trust import teachers_ahead
from xdistill.losses.cross_tokenizer import CROSS_TOKENIZER_LOSSES
from xdistill.losses.topk import TOPK_LOSSES
from xdistill.models.gpt import sample
from xdistill.models.tokenizer import load_tokenizer
from xdistill.students import STUDENTS, count_params
from xdistill.train.loop import TrainPlan, train_student
from xdistill.train.run import DistillResult

KIND = "language-modeling"
LOSS_ALIASES = {"kd": "forward_kl"}  # the config's default loss name means forward KL for language models
SAMPLE_PROMPT_BYTES = 48  # the report's samples continue the first bytes of test documents
SAMPLES = 3


def loss_name(config) -> str:
    return LOSS_ALIASES.get(config.loss, config.loss)


def lm_config_problems(config, task=None, teachers_given: bool = False) -> list[str]:
    problems = config.problems()
    method = METHODS.get(config.method) if config.method in METHODS else None
    if method is None:
        problems.append(METHODS.unknown_message(config.method))
    if config.cross_tokenizer_loss not in CROSS_TOKENIZER_LOSSES:
        problems.append(CROSS_TOKENIZER_LOSSES.unknown_message(config.cross_tokenizer_loss))
    if config.transplant and not config.init:
        problems.append("'transplant' builds new token embeddings in the space of a model that has the student's "
                        "tokenizer: pass init=FILE (a generic student from xdistill pretrain).")
    if loss_name(config) not in TOPK_LOSSES:
        problems.append(f"'loss' must be one of {', '.join(TOPK_LOSSES.names())} for language models (or 'kd', "
                        f"forward KL). Got {config.loss!r}.")
    if config.student.name and config.student.name not in STUDENTS:
        problems.append(STUDENTS.unknown_message(config.student.name))
    elif config.student.name and "tokens" not in STUDENTS.get(config.student.name).inputs:
        problems.append(f"Student '{config.student.name}' does not read token ids; language models train 'gpt'.")
    if task is None and not config.task:
        problems.append("No task given. Pass --task DIR (a folder holding task.yaml).")
    if method is not None:
        if method.teachers and not teachers_given and not config.zoo:
            problems.append(f"Method '{config.method}' distills teachers, so it needs --zoo FILE.")
        if method.init == "required" and not config.init:
            problems.append(f"Method '{config.method}' starts from a generic pretrained student: make one with "
                            "`xdistill pretrain --task LM_TASK --out FILE.safetensors`, then pass init=FILE.")
        if method.init == "none" and config.init:
            problems.append(f"Method '{config.method}' trains from scratch; drop init=.")
    if config.init and not Path(config.init).is_file():
        problems.append(f"'init' file '{config.init}' does not exist.")
    if config.tokenizer and not Path(config.tokenizer).is_file():
        problems.append(f"'tokenizer' file '{config.tokenizer}' does not exist. Give a tokenizer.json.")
    if not config.tokenizer and not config.init and method is not None and not method.teachers:
        problems.append(f"Method '{config.method}' needs the student's tokenizer: pass tokenizer=FILE (a tokenizer.json; "
                        "the LM demo world and `xdistill pretrain` write one).")
    if config.domain_sampling and method is not None and not method.teachers:
        problems.append(f"'domain_sampling' weighs the train domains by how far the student trails the teachers; "
                        f"method '{config.method}' has none. Use nearest or weighted, or drop domain_sampling.")
    if config.resume and not config.out:
        problems.append("--resume needs --out, the folder of the interrupted run.")
    return problems


def resolve_lm(config, task):
    return dataclasses.replace(config, student=dataclasses.replace(config.student, name=config.student.name or "gpt"))


def student_and_tokenizer(config, teacher_tokenizer=None):
    """The student network (from init= or built afresh) and its tokenizer."""
    if config.init:
        network, tokenizer = load_lm_file(config.init)
        if config.tokenizer and load_tokenizer(config.tokenizer).identity != tokenizer.identity:
            raise XDistillError(f"'tokenizer' {config.tokenizer} differs from the tokenizer of init file "
                                f"{config.init}. Drop tokenizer= (the init file carries its own).")
        student = build_lm_student(config.student.name, tokenizer, {**config.student.knobs,
                                                                    **_knobs_of(network.config)})
        network_of(student).load_state_dict(network.state_dict())
        return student, tokenizer
    tokenizer = load_tokenizer(config.tokenizer) if config.tokenizer else teacher_tokenizer
    if tokenizer is None:
        raise XDistillError("No tokenizer for the student: pass tokenizer=FILE.")
    torch.manual_seed(config.seed)
    return build_lm_student(config.student.name, tokenizer, dict(config.student.knobs)), tokenizer


def _knobs_of(gpt_config) -> dict:
    return {"d_model": gpt_config.d_model, "n_layer": gpt_config.n_layer, "n_head": gpt_config.n_head,
            "context": gpt_config.context}


def score_student(student, tokenizer, documents: list[str]):
    """The student's :class:`TextScore` on ``documents``, scored in eval mode; the student is left training."""
    network = network_of(student)
    student.eval()
    score = score_text(StudentLM(network, tokenizer, network.config.context), documents, batch_size=32)
    student.train()
    return score


def against_student(student, tokenizer, task, prepared, chosen, weights, notes, log):
    """The chosen teachers (and renormalised weights) whose bits per byte on the train text are below the
    student's before training (``trust.py``), with the record of the decision for metrics.json."""
    start = score_student(student, tokenizer, task.splits["train"].documents).bits_per_byte
    scores = {n: float(prepared.entries[n]["bits_per_byte"]) for n in chosen}
    ahead, behind = teachers_ahead(start, scores)
    for name in behind:
        notes.append(f"teacher '{name}' not distilled: {scores[name]:.4f} bits per byte on the train text, behind the "
                     f"student's {start:.4f} before training")
    if log is not None and behind:
        log(f"not distilling {', '.join(behind)}: behind the student's {start:.4f} bits per byte before training"
            + ("" if ahead else "; training on the text alone"))
    keep = [chosen.index(n) for n in ahead]
    kept = weights[keep] / weights[keep].sum() if keep else weights[keep]
    return ahead, kept, {"student_start_bits_per_byte": start, "teachers_behind": behind}


def transplant_teachers(config, prepared, chosen, student, tokenizer, task, log) -> dict:
    """Give each chosen teacher with another tokenizer the student's (``transplant.py``), cache it on the train
    text and put it in the teacher's place; returns each one's bits per byte before and after."""
    import copy

    from xdistill.kinds.language_modeling.transplant import TransplantedTeacher

    if not config.init:
        raise XDistillError("'transplant' builds the new token embeddings in the embedding space of a model that "
                            "has the student's tokenizer: pass init=FILE (a generic student from xdistill pretrain).")
    donor = copy.deepcopy(network_of(student)).eval()
    record = {}
    for name in chosen:
        teacher = prepared.teacher(name)
        if teacher.tokenizer.identity == tokenizer.identity:
            continue
        new = TransplantedTeacher(teacher, tokenizer, donor, config.transplant_atoms)
        before = float(prepared.entries[name]["bits_per_byte"])
        prepared.entries[name] = prepared.cache.ensure(new, task.splits["train"])
        prepared.teachers[prepared.teachers.index(teacher)] = new
        after = float(prepared.entries[name]["bits_per_byte"])
        record[name] = {"bits_per_byte_before": before, "bits_per_byte_after": after,
                        "shared_tokens": new.shared_tokens, "atoms": config.transplant_atoms}
        if log is not None:
            log(f"transplanted the student's tokenizer into '{name}' ({new.shared_tokens} shared tokens): "
                f"{before:.4f} -> {after:.4f} bits per byte on the train text")
    return record


def teacher_targets(config, method, task, given, log):
    """(targets, prepared, chosen names, weights, notes) for a teacher method."""
    from xdistill.cache.extract import TeacherCache
    from xdistill.home import default_cache_dir
    from xdistill.teachers.zoo import load_zoo

    prepared = given.prepared
    if prepared is None:
        teachers = given.teachers or load_zoo(config.zoo).select(config.teachers or None).teachers(config.device)
        cache = TeacherCache(Path(config.cache_dir) if config.cache_dir else default_cache_dir(), progress=config.progress)
        prepared = prepare_lm(task, language_models(teachers), topk_cache_of(cache, config.selection), config.selection, log=log)
    names, weights = method.choose(prepared.ranking)
    return prepared, list(names), np.asarray(weights, dtype=np.float64)


def distill_lm(config, task, given, runtime) -> DistillResult:
    method = METHODS.get(config.method)
    log = runtime.info
    started = time.perf_counter()
    out = Path(config.out) if config.out else None
    notes, teacher_info = [], {}
    prepared = targets = anneal = cross = None
    transplanted: dict = {}
    chosen: list[str] = []
    if method.teachers:
        prepared, chosen, weights = teacher_targets(config, method, task, given, log)
        first = prepared.teacher(chosen[0])
        student, tokenizer = student_and_tokenizer(config, first.tokenizer)
        if config.transplant:
            transplanted = transplant_teachers(config, prepared, chosen, student, tokenizer, task, log)
        if config.anneal:
            chosen, weights, anneal = against_student(student, tokenizer, task, prepared, chosen, weights, notes, log)
        stream = token_stream(task.splits["train"].documents, tokenizer)
        parts = [prepared.cache.load(prepared.teacher(name), task.splits["train"]) for name in chosen]
        others = [n for n in chosen if prepared.teacher(n).tokenizer.identity != tokenizer.identity]
        if others:  # at least one teacher cuts the text into other tokens: align them all by bytes
            if config.domain_sampling:
                raise XDistillError(f"'domain_sampling' reads the teachers' cached rows in the student's tokens, and "
                                    f"teacher(s) {', '.join(others)} use another tokenizer. Drop domain_sampling, "
                                    "or transplant=true.")
            targets = align_targets(stream, parts, chosen, weights, tokenizer,
                                    [prepared.teacher(n).tokenizer for n in chosen], config.cross_tokenizer_loss,
                                    config.agreement_kd)
            cross = {"loss": config.cross_tokenizer_loss, "agreement_kd": config.agreement_kd, "other_tokenizers": others,
                     **targets.info}
        elif chosen:
            for name, part in zip(chosen, parts):
                check_alignment(part, stream.doc_tokens, name)
            targets = method.combine(parts, weights, config)
        teacher_info = {n: {"weight": float(w), "bits_per_byte": prepared.entries[n]["bits_per_byte"],
                            "domain": getattr(prepared.teacher(n), "domain", ""),
                            "tokenizer": prepared.teacher(n).tokenizer.identity} for n, w in zip(chosen, weights)}
    else:
        student, tokenizer = student_and_tokenizer(config)
        stream = token_stream(task.splits["train"].documents, tokenizer)
    gpt = network_of(student)
    context = gpt.config.context
    test_docs = task.splits["test"].documents

    def evaluate(model) -> dict:
        score = score_student(model, tokenizer, test_docs)
        return {"bits_per_byte": score.bits_per_byte, "nats_per_token": score.nats_per_token}

    ctx = StepContext(targets=targets, loss=loss_name(config), kd_weight=config.kd_weight, label_weight=config.label_weight,
                      gate=bool(config.anneal and method.teachers), cross_tokenizer_loss=config.cross_tokenizer_loss,
                      alm_temperature=config.alm_temperature)
    sampling = domain_sampler(config, task, stream, targets, tokenizer, context) if config.domain_sampling else None
    def batches(epoch, rank, world):
        domains = (sampling.doc_domain, sampling.weights) if sampling is not None else (None, None)
        return window_batches(stream, context, config.batch_size, config.seed, epoch, *domains)

    # A teacher method left with no teacher ahead of the student trains as its baseline does (trust.py).
    step = method.step if targets is not None or not method.teachers else next_token_step
    if isinstance(targets, CrossTokenizerTargets):
        step = cross_tokenizer_step
    plan = TrainPlan(step=step, context=ctx,
                     steps_per_epoch=steps_per_epoch(stream, context, config.batch_size, config.max_steps_per_epoch),
                     batches=batches, evaluate=evaluate,
                     before_epoch=sampling.before_epoch if sampling is not None else None)
    if out is not None:
        atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    train_started = time.perf_counter()
    history = train_student(student, plan, config, out, runtime)
    train_seconds = time.perf_counter() - train_started
    student.eval()
    lm = StudentLM(gpt, tokenizer, context)
    score = score_text(lm, test_docs, batch_size=32)
    metrics = {
        "kind": KIND, "task": task.name, "method": config.method, "seed": config.seed,
        "headline": {"key": "bits_per_byte", "lower_is_better": True},
        "test": score.to_json(), "params": count_params(gpt), "epoch_reported": "last",
        "train_tokens": int(len(stream.ids)), "train_seconds": train_seconds,
        "seconds": time.perf_counter() - started, "tokenizer": tokenizer.identity,
        "teachers": teacher_info, "notes": notes, "loss": (config.cross_tokenizer_loss if cross else loss_name(config)) if method.teachers else "cross-entropy",
        "history": history.to_json(), "samples": generate_samples(lm, test_docs, config.seed),
    }
    if prepared is not None:
        metrics["ranking"] = prepared.ranking.to_json()
    if anneal is not None:  # the teachers weighed against the student's starting point (trust.py)
        metrics["anneal"] = anneal
    if cross is not None:
        metrics["cross_tokenizer"] = cross
    if transplanted:
        metrics["transplant"] = transplanted
    if out is not None and runtime.rank == 0:
        save_lm_folder(out, student, tokenizer, {"context": context, "tokenizer": tokenizer.identity})
        atomic_write_json(out / "metrics.json", metrics)
    return DistillResult(student, metrics, history, out, None if prepared is None else prepared.ranking, targets)


class DomainSampler:
    """Each epoch's domain weights (``domains.py``), decided before the epoch from the student as it stands."""

    def __init__(self, names, doc_domain, teacher_means, documents, tokenizer, context) -> None:
        self.names, self.doc_domain, self.teacher_means = names, doc_domain, teacher_means
        self.documents, self.tokenizer, self.context = documents, tokenizer, context
        self.weights = None

    def before_epoch(self, student, epoch: int, records: list) -> dict:
        from xdistill.kinds.language_modeling.domains import domain_weights, per_domain_means, student_token_nll

        counts = [len(self.tokenizer.encode(d)[0]) for d in self.documents]
        nll = student_token_nll(network_of(student), self.tokenizer, self.context, self.documents)
        student_means = per_domain_means(nll, counts, self.doc_domain, len(self.names))
        self.weights = domain_weights(student_means, self.teacher_means)
        return {"domains": self.names, "domain_weights": self.weights.tolist(),
                "student_nll": student_means.tolist(), "teacher_nll": self.teacher_means.tolist()}


def domain_sampler(config, task, stream, targets, tokenizer, context) -> DomainSampler:
    from xdistill.kinds.language_modeling.domains import domain_index, per_domain_means, teacher_token_nll

    split = task.splits["train"]
    if not split.domains or len(set(split.domains)) < 2:
        raise XDistillError(f"'domain_sampling' needs train documents from two or more domains, and task "
                            f"'{task.name}' names {len(set(split.domains or []))}. Give each line of the train "
                            "JSONL a 'domain' field, or drop domain_sampling.")
    names, doc_domain = domain_index(split.domains)
    teacher_means = per_domain_means(teacher_token_nll(targets, stream), stream.doc_tokens, doc_domain, len(names))
    return DomainSampler(names, doc_domain, teacher_means, split.documents, tokenizer, context)


def generate_samples(lm: StudentLM, documents: list[str], seed: int, n: int = SAMPLES, max_new_tokens: int = 48) -> list[dict]:
    """A few continuations of the starts of test documents (for the report)."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for document in documents[:n]:
        prompt = document.encode("utf-8")[:SAMPLE_PROMPT_BYTES].decode("utf-8", "ignore")
        ids = [lm.tokenizer.bos_id, *lm.tokenizer.encode(prompt)[0].tolist()]
        new = sample(lm.token_logits, ids, lm.context, max_new_tokens, 0.8, generator)
        samples.append({"prompt": prompt, "continuation": lm.tokenizer.decode(new)})
    return samples


def evaluate_lm(run_dir: Path, task, split: str) -> dict:
    """``xdistill eval RUN``: bits per byte (and nats per token, tokens per second) on a split."""
    from xdistill.kinds.language_modeling.student import load_lm_folder

    if split not in task.splits:
        raise XDistillError(f"Task '{task.name}' has no split '{split}'. Splits: {', '.join(task.splits)}.")
    network, tokenizer = load_lm_folder(run_dir)
    meta = json.loads((Path(run_dir) / "student.json").read_text())
    score = score_text(StudentLM(network, tokenizer, int(meta.get("context", network.config.context))),
                       task.splits[split].documents, batch_size=32)
    return {"kind": KIND, "split": split, **score.to_json(), "params": count_params(network)}
