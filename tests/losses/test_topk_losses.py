"""The top-k + tail losses against literal implementations of their formulas.

The references below work on Python floats, one row at a time, straight from the definitions: the
student's k + 1 bins are its softmax probabilities of the teacher's k ids and the sum of its
probabilities over every other id (summed explicitly, not as one minus the rest); the teacher's are
its cached probabilities and tail mass, normalised to sum to 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xdistill.errors import XDistillError
from xdistill.losses.topk import TOPK_LOSSES, call_topk_loss, topk_forward_kl

RELATIVE_TOLERANCE = 1e-9  # float64 throughout; the tail as 1 - sum(top k) loses ~1e-16 absolute


def reference_bins(logits, ids, logp, tail_logp):
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    total = sum(exps)
    q = [exps[i] / total for i in ids]
    q.append(sum(exps[j] for j in range(len(logits)) if j not in set(ids)) / total)
    p = [math.exp(v) for v in logp] + [math.exp(tail_logp)]
    p = [v / sum(p) for v in p]
    return q, p


def kl(a, b):
    return sum(x * math.log(x / y) for x, y in zip(a, b) if x > 0)


def reference(name, logits, ids, logp, tail, t=1.0, weight=None):
    per_row = []
    for row in range(len(logits)):
        q, p = reference_bins(list(logits[row]), list(ids[row]), list(logp[row]), tail[row])
        if name == "forward_kl":
            per_row.append(kl(p, q))
        elif name == "reverse_kl":
            per_row.append(kl(q, p))
        else:
            mixed = [math.exp((1 - t) * math.log(a) + t * math.log(b)) for a, b in zip(q, p)]
            target = [m / sum(mixed) for m in mixed]
            per_row.append(kl(target, q))
    weights = [1.0] * len(per_row) if weight is None else list(weight)
    return sum(w * v for w, v in zip(weights, per_row)) / len(per_row)


def random_rows(rng, n=6, vocab=11, k=4):
    logits = rng.normal(size=(n, vocab)) * rng.uniform(0.5, 3)
    teacher = rng.normal(size=(n, vocab)) * 2
    log_p = teacher - np.log(np.exp(teacher).sum(axis=1, keepdims=True))
    ids = np.argsort(-log_p, axis=1)[:, :k]
    logp = np.take_along_axis(log_p, ids, axis=1)
    tail = np.log(1 - np.exp(logp).sum(axis=1))
    return logits, ids, logp, tail


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", TOPK_LOSSES.names())
def test_each_loss_matches_its_literal_reference(name, seed):
    rng = np.random.default_rng([seed, 7])
    logits, ids, logp, tail = random_rows(rng)
    weight = rng.uniform(0, 2, size=len(logits)) if seed % 2 else None
    t = float(rng.uniform()) if name == "taid" else 1.0
    inputs = {"student_logits": torch.tensor(logits), "teacher_ids": torch.tensor(ids),
              "teacher_logp": torch.tensor(logp), "teacher_tail_logp": torch.tensor(tail)}
    kwargs = {"t": t} if name == "taid" else {}
    got = TOPK_LOSSES.get(name)(**inputs, **kwargs, weight=None if weight is None else torch.tensor(weight))["loss"]
    assert float(got) == pytest.approx(reference(name, logits, ids, logp, tail, t, weight), rel=RELATIVE_TOLERANCE)


def test_taid_is_forward_kl_at_t_1_and_zero_at_t_0_and_scheduled():
    logits, ids, logp, tail = random_rows(np.random.default_rng(3))
    inputs = {"student_logits": torch.tensor(logits), "teacher_ids": torch.tensor(ids),
              "teacher_logp": torch.tensor(logp), "teacher_tail_logp": torch.tensor(tail)}
    forward = float(topk_forward_kl(**inputs)["loss"])
    assert float(TOPK_LOSSES.get("taid")(**inputs, t=1.0)["loss"]) == pytest.approx(forward, rel=1e-12)
    assert float(TOPK_LOSSES.get("taid")(**inputs, t=0.0)["loss"]) == pytest.approx(0.0, abs=1e-12)
    assert float(call_topk_loss("taid", inputs, step=10, total_steps=10)["loss"]) == pytest.approx(forward, rel=1e-12)
    assert 0 < float(call_topk_loss("taid", inputs, step=0, total_steps=10)["loss"]) < forward


def test_a_student_equal_to_the_teacher_has_zero_loss():
    logits = torch.tensor([[3.0, 1.0, 0.5, -1.0]], dtype=torch.float64)
    log_p = torch.log_softmax(logits, dim=1)
    inputs = {"student_logits": logits, "teacher_ids": torch.tensor([[0, 1]]), "teacher_logp": log_p[:, :2],
              "teacher_tail_logp": torch.log(1 - log_p[:, :2].exp().sum(dim=1))}
    for name in TOPK_LOSSES.names():
        kwargs = {"t": 0.5} if name == "taid" else {}
        assert float(TOPK_LOSSES.get(name)(**inputs, **kwargs)["loss"]) == pytest.approx(0.0, abs=1e-12)


def test_ids_outside_the_students_vocabulary_name_the_tokenizer_mismatch():
    with pytest.raises(XDistillError, match="tokenizer differs from the student's"):
        topk_forward_kl(torch.zeros(2, 5), torch.tensor([[0, 7], [1, 2]]), torch.zeros(2, 2), torch.zeros(2))


@pytest.mark.parametrize("name", TOPK_LOSSES.names())
def test_log_probabilities_given_as_normalized_give_the_same_loss(name):
    logits, ids, logp, tail = random_rows(np.random.default_rng(5))
    inputs = {"teacher_ids": torch.tensor(ids), "teacher_logp": torch.tensor(logp), "teacher_tail_logp": torch.tensor(tail)}
    kwargs = {"t": 0.7} if name == "taid" else {}
    fn = TOPK_LOSSES.get(name)
    raw = fn(student_logits=torch.tensor(logits), **inputs, **kwargs)["loss"]
    given = fn(student_logits=torch.log_softmax(torch.tensor(logits), dim=1), normalized=True, **inputs, **kwargs)["loss"]
    assert float(given) == pytest.approx(float(raw), rel=1e-12)
