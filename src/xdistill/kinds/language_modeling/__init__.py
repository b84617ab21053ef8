"""The language-modeling kind: a target text (``train`` and ``test``), causal-LM teachers each with
its own tokenizer, ranked by bits per byte, their next-token distributions cached as top k plus
tail, and a small GPT student distilled from them.

Registered as ``language-modeling``. Files: ``task`` (the folder format), ``scoring`` (bits per
byte), ``topk`` (the cache format), ``prepare`` (cache + rank), ``data`` and ``steps`` (training),
``targets`` (mixing teachers), ``methods/``, ``run`` (distill, eval), ``student`` (files),
``verbs`` (cache, pretrain, generate, rank --validate).
"""

from __future__ import annotations

from xdistill.kinds.language_modeling.methods import METHODS
from xdistill.kinds.language_modeling.prepare import SCORE, prepare_lm
from xdistill.kinds.language_modeling.run import distill_lm, evaluate_lm, lm_config_problems, resolve_lm
from xdistill.kinds.language_modeling.task import KIND, load_lm_task
from xdistill.kinds.language_modeling.verbs import cache_lm, generate_lm, pretrain_lm, pretrain_problems, validate_lm
from xdistill.kinds.registry import KINDS, TaskKind
from xdistill.losses.topk import TOPK_LOSSES
from xdistill.registry import Registry
from xdistill.students import STUDENTS

SCORES = Registry("language-modeling selection metric")
SCORES.register(SCORE, "bits per byte of the teacher on the target's train text (lower is better)")

KINDS.register(KIND, TaskKind(
    summary="a target text (train, test): causal LMs ranked by bits per byte and distilled into a small GPT",
    splits=("train", "test"),
    teacher_outputs={"ids": "[n, ceil(k*b/8)] uint8 top-k ids", "logp": "[n, k] float16",
                     "tail_logp": "[n] float16", "span_step": "[n] uint", "span_len": "[n] uint",
                     "nll": "[n] float32", "kl": "[n] float16"},
    headline="bits_per_byte",
    lower_is_better=True,
    methods=METHODS,
    metrics=SCORES,
    load=load_lm_task,
    prepare=prepare_lm,
    distill=distill_lm,
    evaluate=evaluate_lm,
    config_problems=lm_config_problems,
    resolve=resolve_lm,
    students=lambda: [n for n, f in STUDENTS.items() if n == "gpt"],
    losses=TOPK_LOSSES.names,
    cache=cache_lm,
    validate=validate_lm,
    pretrain=pretrain_lm,
    pretrain_problems=pretrain_problems,
    generate=generate_lm,
))
