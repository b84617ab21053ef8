"""How often the test split is scored during training: ``eval_every`` epochs, the last always, or never."""

from __future__ import annotations

import dataclasses

import torch

from xdistill.pipeline.distill import distill
from xdistill.runtime import Runtime
from xdistill.train.config import DistillConfig

QUIET = Runtime(log=None)


def _scored_epochs(result) -> list[int]:
    return [e["epoch"] for e in result.metrics["curves"] if "test" in e]


def test_eval_every_scores_the_chosen_epochs_and_leaves_training_alone(tiny_task, tmp_path):
    base = DistillConfig(task=str(tiny_task), method="supervised", epochs=5, batch_size=4, progress=False)
    every = distill(base, runtime=QUIET)
    second = distill(dataclasses.replace(base, eval_every=2), runtime=QUIET)
    never = distill(dataclasses.replace(base, eval_every=0), runtime=QUIET)
    assert _scored_epochs(every) == [1, 2, 3, 4, 5]
    assert _scored_epochs(second) == [2, 4, 5]
    assert _scored_epochs(never) == []
    assert [e["epoch"] for e in never.metrics["curves"]] == [1, 2, 3, 4, 5]
    # Scoring reads the test split only: the weights and the final scores are the same either way.
    for (k, a), (_, b) in zip(every.student.state_dict().items(), never.student.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    assert never.metrics["test"]["accuracy"] == every.metrics["test"]["accuracy"]


def test_negative_eval_every_is_refused():
    problems = DistillConfig(task="t", eval_every=-1).problems()
    assert any("'eval_every' must be >= 0" in p and "Got -1" in p for p in problems)
    assert not any("eval_every" in p for p in DistillConfig(task="t", eval_every=0).problems())
