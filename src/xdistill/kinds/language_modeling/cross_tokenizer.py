"""Distilling teachers whose tokenizers differ from the student's (``cross_tokenizer_loss``).

When a target is built (once per run, before training), every teacher's cached rows are aligned by bytes
with the student's tokens of the train text (``alignment.py``): the chunks are the stretches between offsets
where the student and every chosen teacher end a token. Per student token, the target then holds

    chunk_len [n]   at the last student token of a chunk, its number of student tokens; 0 elsewhere
    chunk_logp [n]  there, the teachers' log-likelihood of the chunk, log sum_t w_t p_t(chunk), where
                    p_t(chunk) is the product of teacher t's probabilities of its own tokens in the chunk
    row_at [T, n]   at a student token that opens a chunk, the row of each teacher's token opening it (both
                    predict from the same text there); -1 elsewhere

so a training step only gathers: the student's chunk log-likelihood is a difference of cumulative sums of its
token log-probabilities along the window. ``alm`` compares the chunk likelihoods; ``uld`` and ``shared_vocab``
compare next-token distributions at the chunk openings, each teacher's loss weighted by its weight.

Where every tokenization agrees on a chunk (it is one token, the same bytes, in each) and ``agreement_kd`` is on
(the default), the chunk is a token the student and the teachers all predict from the same text: it is
distilled token-level instead, from one teacher's next-token distribution, the teacher whose weighted
probability of the token is highest (forward KL through the shared vocabulary, ``shared_vocab``); the training
terms ``kd_agree`` and ``kd_chunks`` split ``kd`` between the two.

Teachers against the student (``anneal``), per chunk: a chunk is distilled only where the teachers' mixed
likelihood of it is above the student's (the chunk form of the per-token rule of ``trust.py``); ``uld`` and
``shared_vocab`` use the same decision at the chunk's opening. The share of such chunks is the training term
``teacher_share``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from xdistill.errors import XDistillError
from xdistill.kinds.language_modeling.alignment import (
    chunk_lengths_at_ends,
    chunk_starts,
    document_chunks,
    shared_vocabulary,
)
from xdistill.kinds.language_modeling.data import TokenStream
from xdistill.kinds.language_modeling.steps import StepContext, _log_probs
from xdistill.kinds.language_modeling.topk import TopKTargets
from xdistill.losses.cross_tokenizer import CROSS_TOKENIZER_LOSSES


@dataclass
class AlignedTeacher:
    name: str
    rows: TopKTargets  # the teacher's cached rows on the train text, in its own tokens
    row_at: torch.Tensor  # [n] int64 per student token: the teacher row opening the same chunk, or -1
    weight: float
    student_ids: torch.Tensor | None = None  # [n_teacher, k] the cached ids in the student's vocabulary (-1: not shared)


@dataclass
class CrossTokenizerTargets:
    chunk_len: torch.Tensor  # [n] int64
    chunk_logp: torch.Tensor  # [n] float32
    teachers: list[AlignedTeacher]
    doc_tokens: list[int]
    info: dict = field(default_factory=dict)
    agree_teacher: torch.Tensor | None = None  # [n] int64 where every tokenization agrees on the token: its teacher
    agree_row: torch.Tensor | None = None  # [n] int64 that teacher's row for the token; -1 where they disagree


def align_targets(stream: TokenStream, parts: list[TopKTargets], names: list[str], weights, student_tokenizer,
                  teacher_tokenizers: list, loss: str = "alm", agreement: bool = False) -> CrossTokenizerTargets:
    """The cross-tokenizer target of the teachers' cached rows ``parts`` for the student's train ``stream``.

    ``agreement``: also find the chunks that are one and the same token under every tokenization, and for each
    the one teacher whose weighted probability of that token is highest (``agreement_kd``)."""
    weights = np.asarray(weights, dtype=np.float64)
    weights = weights / weights.sum()
    n = int(sum(stream.doc_tokens))
    for name, part in zip(names, parts):
        if len(part.doc_tokens) != len(stream.doc_tokens):
            raise XDistillError(f"Teacher '{name}' was cached on {len(part.doc_tokens)} documents and the student's "
                                f"train text has {len(stream.doc_tokens)}: they are not the same text.")
        if part.nll is None:
            raise XDistillError(f"Teacher '{name}''s cached rows carry no token log-likelihoods; cache it again.")
    chunk_len = np.zeros(n, dtype=np.int64)
    chunk_logp = np.zeros(n, dtype=np.float64)
    row_at = np.full((len(parts), n), -1, dtype=np.int64)
    agree_teacher = np.full(n, -1, dtype=np.int64)
    agree_row = np.full(n, -1, dtype=np.int64)
    student_offsets = np.cumsum([0, *stream.doc_tokens])
    teacher_offsets = [np.cumsum([0, *p.doc_tokens]) for p in parts]
    nll = [p.nll.double().numpy() for p in parts]
    log_w = np.log(np.maximum(weights, 1e-300))
    n_chunks = 0
    for d in range(len(stream.doc_tokens)):
        s0, s1 = student_offsets[d], student_offsets[d + 1]
        if s1 == s0:
            continue
        spans = [p.spans[o[d]:o[d + 1]] for p, o in zip(parts, teacher_offsets)]
        student_chunks, teacher_chunks, count = document_chunks(stream.spans[s0:s1], spans, names[0])
        n_chunks += count
        lengths = chunk_lengths_at_ends(student_chunks)
        chunk_len[s0:s1] = lengths
        per_teacher = np.stack([np.bincount(c, weights=-nll[t][teacher_offsets[t][d]:teacher_offsets[t][d + 1]],
                                            minlength=count) for t, c in enumerate(teacher_chunks)])
        mixed = np.logaddexp.reduce(per_teacher + log_w[:, None], axis=0)
        ends = lengths > 0
        chunk_logp[s0:s1][ends] = mixed[student_chunks[ends]]
        opening = chunk_starts(student_chunks)
        starts_at = stream.spans[s0:s1, 0]
        for t, chunks in enumerate(teacher_chunks):
            first = np.full(count, -1, dtype=np.int64)
            opens = np.flatnonzero(chunk_starts(chunks))
            first[chunks[opens]] = opens
            candidate = first[student_chunks]
            same = opening & (candidate >= 0)
            same[same] &= spans[t][candidate[same], 0] == starts_at[same]
            row_at[t, s0:s1][same] = teacher_offsets[t][d] + candidate[same]
        if agreement:  # one token in every tokenization: the chunk's likelihood is the token's probability
            single = lengths == 1
            for chunks in teacher_chunks:
                single &= np.bincount(chunks, minlength=count)[student_chunks] == 1
            local = np.flatnonzero(single)
            if len(local):
                rows_here = row_at[:, s0:s1][:, local]
                score = np.stack([log_w[t] - nll[t][rows_here[t]] for t in range(len(parts))])
                best = score.argmax(axis=0)
                agree_teacher[s0 + local] = best
                agree_row[s0 + local] = rows_here[best, np.arange(len(local))]
    teachers = []
    for t, (name, part) in enumerate(zip(names, parts)):
        student_ids = None
        if loss == "shared_vocab" or agreement:
            mapping = torch.from_numpy(shared_vocabulary(teacher_tokenizers[t], student_tokenizer))
            student_ids = mapping[part.ids]
        teachers.append(AlignedTeacher(name, part, torch.from_numpy(row_at[t]), float(weights[t]), student_ids))
    info = {"teachers": list(names), "weights": weights.tolist(), "chunks": n_chunks, "student_tokens": n,
            "student_tokens_per_chunk": n / max(n_chunks, 1),
            "aligned_openings": [int((row_at[t] >= 0).sum()) for t in range(len(parts))]}
    if agreement:
        info["agreeing_tokens"] = int((agree_teacher >= 0).sum())
    return CrossTokenizerTargets(torch.from_numpy(chunk_len), torch.from_numpy(chunk_logp.astype(np.float32)),
                                 teachers, list(stream.doc_tokens), info,
                                 torch.from_numpy(agree_teacher) if agreement else None,
                                 torch.from_numpy(agree_row) if agreement else None)


def cross_tokenizer_step(model, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
    """kd_weight * <cross-tokenizer loss over the window's chunks> + label_weight * cross-entropy."""
    log_probs, targets, keep = _log_probs(model, batch)
    target: CrossTokenizerTargets = ctx.targets
    b, c = batch["ids"].shape
    rows = batch["rows"]
    valid = rows >= 0
    r = rows.clamp(min=0)
    token_logp = (log_probs.gather(1, targets.clamp(min=0)[:, None]).squeeze(1) * keep).view(b, c)
    cumulative = torch.cat([torch.zeros(b, 1, dtype=token_logp.dtype), token_logp.cumsum(dim=1)], dim=1)
    lengths = target.chunk_len[r] * valid
    first = torch.arange(c)[None, :] - lengths + 1
    complete = (lengths > 0) & (first >= 0)
    student_chunk = cumulative[:, 1:] - cumulative.gather(1, first.clamp(min=0))
    teacher_chunk = target.chunk_logp[r]
    distilled = complete
    terms = {}
    if ctx.gate:
        distilled = complete & (teacher_chunk > student_chunk.detach())
        terms["teacher_share"] = (distilled.sum() / complete.sum().clamp(min=1)).detach()
    scored = keep.sum().clamp(min=1)
    agree = None
    if target.agree_teacher is not None:  # agreeing tokens: one teacher's distribution each (agreement_kd)
        agree_teacher = torch.where(valid, target.agree_teacher[r], torch.full_like(r, -1))
        agree = agree_teacher >= 0
        distilled_agree = agree & distilled
        distilled = distilled & ~agree
        kd_agree = log_probs.new_zeros(())
        flat_teacher, flat_row = agree_teacher.reshape(-1), target.agree_row[r.reshape(-1)]
        for index, teacher in enumerate(target.teachers):
            pick = torch.nonzero(distilled_agree.reshape(-1) & (flat_teacher == index), as_tuple=True)[0]
            rows_t = flat_row[pick]
            kd_agree = kd_agree + CROSS_TOKENIZER_LOSSES.get("shared_vocab")(
                log_probs[pick], teacher.student_ids[rows_t], teacher.rows.logp[rows_t],
                teacher.rows.tail_logp[rows_t])["loss"] * (len(pick) / scored)
        terms["kd_agree"] = kd_agree.detach()
    name = ctx.cross_tokenizer_loss
    loss_fn = CROSS_TOKENIZER_LOSSES.get(name)
    if name == "alm":
        kd = loss_fn(student_chunk[distilled], teacher_chunk[distilled],
                     temperature=ctx.alm_temperature)["loss"] * (distilled.sum() / scored)
    else:
        if ctx.gate:  # the chunk's decision, moved from its last token to its first
            opened = torch.zeros(b, c, dtype=torch.long).scatter_add_(1, first.clamp(0, c - 1), distilled.long()) > 0
        else:
            opened = valid if agree is None else valid & ~agree
        flat_rows = r.reshape(-1)
        kd = log_probs.new_zeros(())
        for teacher in target.teachers:
            row = teacher.row_at[flat_rows]
            pick = torch.nonzero((opened.reshape(-1) & (row >= 0)), as_tuple=True)[0]
            t_rows = row[pick]
            inputs = {"student_log_probs": log_probs[pick], "teacher_logp": teacher.rows.logp[t_rows],
                      "teacher_tail_logp": teacher.rows.tail_logp[t_rows]}
            if name == "shared_vocab":
                inputs["teacher_ids"] = teacher.student_ids[t_rows]
            kd = kd + teacher.weight * loss_fn(**inputs)["loss"] * (len(pick) / scored)
    if agree is not None:
        terms["kd_chunks"] = kd.detach()
        kd = kd + kd_agree
    ce = torch.nn.functional.nll_loss(log_probs, targets, ignore_index=-100)
    return {"loss": ctx.kd_weight * kd + ctx.label_weight * ce, "kd": kd.detach(), "ce": ce.detach(), **terms}
