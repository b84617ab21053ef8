"""The verbs that dispatch on the kind, for language models: cache, pretrain, generate, rank --validate."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from xdistill.errors import XDistillError, join_problems
from xdistill.kinds.language_modeling.data import steps_per_epoch, token_stream, window_batches
from xdistill.kinds.language_modeling.prepare import cache_teachers, language_models
from xdistill.kinds.language_modeling.steps import StepContext, next_token_step
from xdistill.kinds.language_modeling.student import build_lm_student, load_lm_file, load_lm_folder, save_lm_file
from xdistill.kinds.language_modeling.task import load_lm_task
from xdistill.kinds.language_modeling.topk import TopKCache
from xdistill.models.gpt import sample
from xdistill.models.tokenizer import load_tokenizer, train_bpe
from xdistill.train.config import DistillConfig
from xdistill.train.loop import TrainPlan, train_student


def cache_lm(task, teachers, config, log=None) -> dict:
    """``xdistill cache`` on a language-modeling task: every teacher's top-k rows on the train text."""
    from xdistill.home import default_cache_dir

    root = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    started = time.perf_counter()
    topk = TopKCache(root, k=config.cache_top_k)
    entries = cache_teachers(task, language_models(teachers), topk, log)
    return {"entries": entries, "seconds": time.perf_counter() - started}


def pretrain_lm(config, runtime=None) -> Path:
    """``xdistill pretrain`` for language models: a generic student on the train text of every --task."""
    folders = [config.task, *config.tasks]
    tasks = [load_lm_task(Path(f)) for f in folders]
    pool = [d for task in tasks for d in task.splits["train"].documents]
    log = runtime.info if runtime is not None else None
    if config.tokenizer:
        tokenizer = load_tokenizer(config.tokenizer)
    else:
        tokenizer = train_bpe(pool, config.vocab_size)
        if log:
            log(f"trained a byte-level BPE tokenizer of {tokenizer.vocab_size} ids on {len(pool)} documents")
    student = train_language_model(pool, tokenizer, dict(config.student.knobs), epochs=config.epochs,
                                   batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                                   family=config.student.name, progress=config.progress, runtime=runtime)
    path = save_lm_file(Path(config.out), student, tokenizer)
    if log:
        log(f"wrote {path}: a {sum(p.numel() for p in student.parameters())}-parameter GPT pretrained on "
            f"the train text of {', '.join(t.name for t in tasks)}")
    return path


def train_language_model(documents: list[str], tokenizer, knobs: dict, epochs: int = 1, batch_size: int = 16,
                         lr: float = 3e-3, seed: int = 0, family: str = "", steps: int = 0,
                         progress: bool = True, runtime=None):
    """A GPT trained from scratch with next-token cross-entropy on ``documents`` (pretraining, the demo's teachers):
    ``epochs`` passes over them, or with ``steps`` > 0 that many steps (as many passes as they take)."""
    from xdistill.runtime import Runtime

    torch.manual_seed(seed)
    student = build_lm_student(family, tokenizer, knobs)
    stream = token_stream(documents, tokenizer)
    context = student.gpt.config.context
    per_epoch = steps_per_epoch(stream, context, batch_size)
    if steps:
        epochs, per_epoch = math.ceil(steps / per_epoch), min(per_epoch, steps)
        per_epoch = math.ceil(steps / epochs)
    train_config = DistillConfig(method="pretrain", epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=0.01,
                                 seed=seed, progress=progress)
    plan = TrainPlan(step=next_token_step, context=StepContext(),
                     steps_per_epoch=per_epoch,
                     batches=lambda epoch, rank, world: window_batches(stream, context, batch_size, seed, epoch))
    train_student(student, plan, train_config, None, runtime or Runtime(log=None))
    return student.eval()


def pretrain_problems(config) -> list[str]:
    problems = []
    if config.tokenizer and not Path(config.tokenizer).is_file():
        problems.append(f"'tokenizer' file '{config.tokenizer}' does not exist.")
    if config.vocab_size < 260:
        problems.append(f"'vocab_size' must be >= 260 (the 256 bytes, BOS and some merges). Got {config.vocab_size}.")
    if config.images:
        problems.append("--images is for image students; a language model pretrains on --task folders.")
    return problems


def load_generator(source: Path):
    """(network, tokenizer) of a run folder, a gpt teacher folder or a pretrained .safetensors file."""
    source = Path(source)
    if source.is_file() and source.suffix == ".safetensors":
        return load_lm_file(source)
    if not source.is_dir():
        raise XDistillError(f"'{source}' is neither a run folder, a gpt teacher folder nor a pretrained .safetensors file.")
    return load_lm_folder(source)


def generate_lm(source: Path, prompt: str = "", n: int = 1, max_new_tokens: int = 64, temperature: float = 0.8,
                seed: int = 0) -> list[dict]:
    """Continuations of ``prompt`` by the language model in ``source``."""
    problems = []
    if n < 1:
        problems.append(f"--n must be >= 1. Got {n}.")
    if max_new_tokens < 1:
        problems.append(f"--max-new-tokens must be >= 1. Got {max_new_tokens}.")
    if not (math.isfinite(temperature) and temperature >= 0):
        problems.append(f"--temperature must be a finite number >= 0 (0 = greedy). Got {temperature}.")
    if problems:
        raise XDistillError(join_problems(problems, "Invalid generate options"))
    network, tokenizer = load_generator(source)
    network.eval()
    generator = torch.Generator().manual_seed(seed)
    prefix = ([tokenizer.bos_id] if tokenizer.bos_id is not None else []) + tokenizer.encode(prompt)[0].tolist()
    if not prefix:
        raise XDistillError("This tokenizer has no BOS token, so generation needs a non-empty --prompt.")
    out = []
    for _ in range(n):
        new = sample(network.token_logits, prefix, network.config.context, max_new_tokens, temperature, generator)
        out.append({"prompt": prompt, "continuation": tokenizer.decode(new)})
    return out


def validate_lm(task, prepared, config, log=None) -> dict:
    """``rank --validate``: distill a short-budget student from each teacher alone (method nearest) and
    measure how well the teachers' bits per byte predict the students' test bits per byte."""
    from xdistill.kinds.language_modeling.run import distill_lm
    from xdistill.runtime import Runtime
    from xdistill.train.run import DistillInputs

    students = {}
    for teacher in prepared.teachers:
        single = dataclasses.replace(prepared, teachers=[teacher])
        single.ranking = dataclasses.replace(prepared.ranking, teachers=[r for r in prepared.ranking.teachers
                                                                         if r.name == teacher.name])
        single.ranking.teachers[0] = dataclasses.replace(single.ranking.teachers[0], rank=1, weight=1.0)
        run = DistillConfig(task=config.task, method="nearest", epochs=config.validate_epochs, seed=config.seed,
                            lr=3e-3, progress=False, cache_top_k=config.cache_top_k, tokenizer=getattr(config, "tokenizer", ""))
        result = distill_lm(run, task, DistillInputs(task=task, prepared=single), Runtime(log=None))
        students[teacher.name] = result.metrics["test"]["bits_per_byte"]
        if log:
            log(f"validation student of {teacher.name}: {students[teacher.name]:.4f} test bits/byte")
    names = list(students)
    teacher_bpb = np.array([prepared.entries[n]["bits_per_byte"] for n in names])
    student_bpb = np.array([students[n] for n in names])
    top = names[int(np.argmin(teacher_bpb))]
    tau = float(kendalltau(teacher_bpb, student_bpb).statistic) if len(names) > 1 else float("nan")
    rho = float(spearmanr(teacher_bpb, student_bpb).statistic) if len(names) > 1 else float("nan")
    return {"epochs": config.validate_epochs, "student_bits_per_byte": students,
            "metrics": {"bits_per_byte": {"kendall_tau": tau, "spearman_rho": rho,
                                          "top1_regret": float(students[top] - student_bpb.min())}}}

