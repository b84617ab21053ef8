"""Scoring a sampler on a task split: draw samples, read them with the task's classifier, compare with the
split's real images (``metrics.py``), and time the sampling.

Samples are drawn for balanced labels (sample i has label i mod the number of classes) from a fixed seed, so
every run and teacher is scored on the same labels and the same starting noise.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from xdistill.kinds.generation.flow import network_evaluations, sample_images, to_model_space
from xdistill.kinds.generation.judge import judge_outputs, load_or_train_judge
from xdistill.kinds.generation.metrics import class_consistency, frechet_distance, precision_recall

EVAL_SAMPLES = 2000  # samples scored against the test split
EVAL_SEED = 0
NEIGHBOURS = 3  # k of the k-NN manifolds of precision and recall


class Scorer:
    """Scores samplers against one split of a task with the task's cached classifier."""

    def __init__(self, task, split: str = "test", n: int = EVAL_SAMPLES, seed: int = EVAL_SEED, log=None) -> None:
        self.task, self.split, self.n, self.seed = task, split, n, seed
        self.judge, self.judge_record = load_or_train_judge(task, log=log)
        self.real, _ = judge_outputs(self.judge, to_model_space(task.splits[split].x))

    def labels(self) -> torch.Tensor:
        return torch.arange(self.n) % len(self.task.classes)

    def score(self, network, steps: int, guidance: float) -> tuple[dict, torch.Tensor, torch.Tensor]:
        """(scores, samples [n, C, H, W] in [-1, 1], their labels)."""
        torch.manual_seed(self.seed)
        started = time.perf_counter()
        x, y = sample_images(network, self.n, steps, guidance, self.seed, self.labels())
        seconds = time.perf_counter() - started
        fake, predicted = judge_outputs(self.judge, x)
        reads = getattr(network, "guidance", None) is not None
        scores = {"frechet_distance": frechet_distance(self.real, fake), **precision_recall(self.real, fake, NEIGHBOURS),
                  "class_consistency": class_consistency(predicted, y.numpy()),
                  "samples_per_second": self.n / seconds, "steps": int(steps), "guidance": float(guidance),
                  "network_evaluations": network_evaluations(steps, guidance, reads), "samples": self.n,
                  "classifier_test_accuracy": self.judge_record["test_accuracy"]}
        return scores, x, y


def real_reference(scorer: Scorer) -> dict:
    """The metrics of held-out real images against the split (train images, as many as samples): the floor
    a perfect generator would reach with this many samples."""
    train = scorer.task.splits["train"]
    rng = np.random.default_rng(scorer.seed)
    index = rng.choice(len(train), size=min(scorer.n, len(train)), replace=False)
    fake, predicted = judge_outputs(scorer.judge, to_model_space(train.x[index]))
    return {"frechet_distance": frechet_distance(scorer.real, fake), **precision_recall(scorer.real, fake, NEIGHBOURS),
            "class_consistency": class_consistency(predicted, train.y[index]), "samples": len(index)}


def member_scores(scorer: Scorer, network, x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    """For a class-routed generator (``members``, ``owned``), each member's parameters and its quality on its
    own classes: its samples among x [n, C, H, W] (labels y [n]) against the split's images of those classes.
    Empty for any other network."""
    if not hasattr(network, "owned"):
        return []
    from xdistill.students import count_params

    fake, predicted = judge_outputs(scorer.judge, x)
    real_labels = np.asarray(scorer.task.splits[scorer.split].y)
    rows = []
    for index, (member, owned) in enumerate(zip(network.members, network.owned)):
        mine, real = np.isin(y.numpy(), owned), np.isin(real_labels, owned)
        rows.append({"student": index, "classes": owned, "params": count_params(member),
                     "frechet_distance": frechet_distance(scorer.real[real], fake[mine]),
                     **precision_recall(scorer.real[real], fake[mine], NEIGHBOURS),
                     "class_consistency": class_consistency(predicted[mine], y.numpy()[mine]),
                     "samples": int(mine.sum())})
    return rows
