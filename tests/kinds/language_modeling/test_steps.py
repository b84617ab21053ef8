"""The training steps score only positions whose target is a real token, as means over those positions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xdistill.kinds.language_modeling.steps import StepContext, distill_step, next_token_step
from xdistill.kinds.language_modeling.topk import TopKTargets
from xdistill.losses.topk import topk_forward_kl


class Table(torch.nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, dtype=torch.float64))

    def token_logits(self, ids):
        return self.table[ids]


def test_masked_positions_are_left_out_of_both_terms():
    torch.manual_seed(0)
    vocab, k = 7, 3
    model = Table(vocab)
    ids = torch.tensor([[0, 3, 4, 0, 5]])
    targets = torch.tensor([[3, 4, 0, 5, 6]])
    rows = torch.tensor([[0, 1, -1, 2, 3]])  # the third target is a BOS: not scored
    teacher_logp = torch.log_softmax(torch.randn(4, vocab, dtype=torch.float64), dim=1)
    top, top_ids = teacher_logp.topk(k, dim=1)
    tail = torch.log(1 - top.exp().sum(dim=1))
    targets_ = TopKTargets(top_ids, top, tail, None, [4], vocab, {})
    batch = {"ids": ids, "targets": targets, "rows": rows}
    terms = distill_step(model, batch, StepContext(targets=targets_))
    keep = torch.tensor([0, 1, 3, 4])
    logits = model.token_logits(ids)[0][keep]
    expected_ce = F.cross_entropy(logits, targets[0][keep])
    expected_kd = topk_forward_kl(logits, top_ids, top, tail)["loss"]
    assert float(terms["ce"]) == pytest.approx(float(expected_ce), rel=1e-6)  # the step computes in float32
    assert float(terms["kd"]) == pytest.approx(float(expected_kd), rel=1e-6)  # the step computes in float32
    assert float(next_token_step(model, batch, StepContext())["ce"]) == pytest.approx(float(expected_ce), rel=1e-6)  # the step computes in float32


def test_teacher_token_logp_reads_the_cached_row_or_spreads_the_tail():
    from xdistill.kinds.language_modeling.topk import teacher_token_logp

    ids = torch.tensor([[2, 5, 1], [0, 3, 4]])
    logp = torch.log(torch.tensor([[0.5, 0.2, 0.1], [0.6, 0.3, 0.05]], dtype=torch.float64))
    tail = torch.log(torch.tensor([0.2, 0.05], dtype=torch.float64))
    got = teacher_token_logp(ids, logp, tail, torch.tensor([5, 6]), vocab_size=8)
    # token 5 is cached in row 0 (p = 0.2); token 6 is not in row 1: its tail 0.05 spread over 8 - 3 ids
    torch.testing.assert_close(got, torch.tensor([0.2, 0.05 / 5], dtype=torch.float64).log().float(),
                               rtol=1e-6, atol=0)


def test_the_gate_distils_only_tokens_the_teachers_predict_better():
    torch.manual_seed(1)
    vocab, k = 7, 3
    model = Table(vocab)
    ids = torch.tensor([[0, 3, 4, 1, 5, 2]])
    targets = torch.tensor([[3, 4, 1, 5, 2, 6]])
    rows = torch.arange(6)[None, :]
    raw = torch.randn(6, vocab, dtype=torch.float64)
    raw[[0, 2, 4], targets[0, [0, 2, 4]]] += 6.0  # the teacher is sure of the actual token on three rows
    teacher_logp = torch.log_softmax(raw, dim=1)
    top, top_ids = teacher_logp.topk(k, dim=1)
    tail = torch.log(1 - top.exp().sum(dim=1))
    cached = TopKTargets(top_ids, top, tail, None, [6], vocab, {})
    batch = {"ids": ids, "targets": targets, "rows": rows}
    terms = distill_step(model, batch, StepContext(targets=cached, gate=True))
    # Literal: the teacher's log-probability of each actual next token (cached, or the tail spread over V - k),
    # against the student's; the forward KL summed over the tokens where the teacher's is higher, over all 6.
    logits = model.token_logits(ids)[0]
    student_lp = F.log_softmax(logits, dim=1)[torch.arange(6), targets[0]]
    teacher_lp = []
    for n in range(6):
        hit = (top_ids[n] == targets[0, n]).nonzero()
        teacher_lp.append(float(top[n, hit[0, 0]]) if len(hit) else float(tail[n]) - torch.log(torch.tensor(4.0)).item())
    ahead = torch.tensor(teacher_lp, dtype=torch.float64) > student_lp
    assert 0 < int(ahead.sum()) < 6  # the case exercises both sides of the gate
    per_row = torch.stack([topk_forward_kl(logits[n:n + 1], top_ids[n:n + 1], top[n:n + 1], tail[n:n + 1])["loss"]
                           for n in range(6)])
    expected = float((per_row * ahead).sum() / 6)
    assert float(terms["kd"]) == pytest.approx(expected, rel=1e-5)  # float32 step against float64 rows
    assert float(terms["teacher_share"]) == pytest.approx(float(ahead.sum()) / 6, abs=1e-7)
