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
