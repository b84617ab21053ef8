"""Cache and rank language-model teachers for a target text, tokenizer-free.

Each teacher is scored by its bits per byte on the target's ``train`` text (lower is better),
which compares teachers whose tokenizers differ on one scale. The same pass fills the top-k
cache (``topk.py``), so ranking and distillation read one extraction. Weights are
``xdistill.select.weights.teacher_weights`` of the negative bits per byte (a softmax over their
standardised values at ``weight_temperature``, over the ``top_k`` best).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdistill.errors import XDistillError
from xdistill.kinds.language_modeling.topk import TopKCache
from xdistill.select.rank import Ranking, TeacherRanking
from xdistill.select.weights import teacher_weights

SCORE = "bits_per_byte"


def language_models(teachers: list) -> list:
    """The teachers, refusing any that is not a causal language model."""
    others = [t.name for t in teachers if not getattr(t, "language_model", False)]
    if others:
        raise XDistillError(f"Teachers {', '.join(repr(n) for n in others)} are not language models. A "
                            "language-modeling task takes 'kind: gpt' or 'kind: hf' with 'task: causal-lm' teachers.")
    return list(teachers)


@dataclass
class LMPrepared:
    teachers: list
    cache: TopKCache
    ranking: Ranking
    entries: dict[str, dict] = field(default_factory=dict)  # teacher -> entry.json of its train cache

    def teacher(self, name: str):
        return next(t for t in self.teachers if t.name == name)


def topk_cache_of(cache, selection, progress: bool | None = None) -> TopKCache:
    """The top-k view of a :class:`xdistill.cache.TeacherCache` (same folder)."""
    k = getattr(selection, "cache_top_k", 32) if selection is not None else 32
    return TopKCache(cache.root, k=k, progress=cache.progress if progress is None else progress)


def cache_teachers(task, teachers, topk: TopKCache, log=None) -> dict[str, dict]:
    entries = {}
    for teacher in language_models(teachers):
        entries[teacher.name] = topk.ensure(teacher, task.splits["train"], log)
        if log is not None:
            info = entries[teacher.name]
            log(f"{teacher.name}: {info['bits_per_byte']:.4f} bits/byte on '{task.name}' train, "
                f"{info['bytes_on_disk'] / info['n']:.1f} cache bytes/token at k={info['k']}, "
                f"reconstruction KL {info['reconstruction_kl']:.2e} nats/token")
    return entries


def prepare_lm(task, teachers, cache, selection, views: int = 0, log=None) -> LMPrepared:
    """Cache every teacher's top-k distributions on the train text and rank them by bits per byte."""
    topk = cache if isinstance(cache, TopKCache) else topk_cache_of(cache, selection)
    entries = cache_teachers(task, teachers, topk, log)
    scores = {name: -info["bits_per_byte"] for name, info in entries.items()}
    temperature = selection.weight_temperature if selection is not None else 1.0
    top_k = selection.top_k if selection is not None else 0
    weights = teacher_weights(scores, temperature, top_k)
    order = sorted(scores, key=lambda n: -scores[n])
    rows = []
    for teacher in teachers:
        info = entries[teacher.name]
        rows.append(TeacherRanking(teacher.name, getattr(teacher, "domain", ""), getattr(teacher.spec, "kind", ""),
                                   {SCORE: info["bits_per_byte"], "reconstruction_kl": info["reconstruction_kl"],
                                    "cache_bytes_per_token": info["bytes_on_disk"] / info["n"]},
                                   order.index(teacher.name) + 1, weights[teacher.name]))
    ranking = Ranking(task.name, SCORE, "none", 0, temperature, top_k, rows,
                      notes=[f"lower {SCORE} ranks first; weights are a softmax over standardised -{SCORE}"],
                      metric_requested=SCORE)
    return LMPrepared(list(teachers), topk, ranking, entries)
