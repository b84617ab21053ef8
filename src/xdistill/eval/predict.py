"""Student predictions and scores on a task split."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from xdistill.data.task import Split, Task
from xdistill.eval.metrics import classification_report
from xdistill.train.inputs import StudentInputs


def predict_proba(student: nn.Module, inputs: StudentInputs, split: Split, device: str = "cpu",
                  batch_size: int = 512) -> np.ndarray:
    """Student class probabilities [N, C] on every sample of ``split`` (eval mode, no augmentation)."""
    was_training = student.training
    student.eval()
    out = []
    with torch.inference_mode():
        for batch in inputs.encode_all(split, batch_size):
            out.append(torch.softmax(student(batch.to(device)).float(), dim=1).cpu().numpy())
    student.train(was_training)
    return np.concatenate(out)


def evaluate_split(student: nn.Module, inputs: StudentInputs, task: Task, split: str = "test",
                   reference_probs: np.ndarray | None = None, device: str = "cpu") -> dict:
    """accuracy, macro_f1, ece, nll, per-class accuracy (and agreement with ``reference_probs``)."""
    data = task.splits[split]
    if data.y is None:
        from xdistill.errors import XDistillError

        raise XDistillError(f"Split '{split}' has no labels to score against. Use 'labeled' or 'test'.")
    probs = predict_proba(student, inputs, data, device)
    return classification_report(probs, data.y, task.num_classes, reference_probs=reference_probs)


def cpu_latency_per_sample_ms(student: nn.Module, sample: torch.Tensor, batch_size: int = 64, repeats: int = 5) -> float:
    """Median CPU milliseconds per sample for batched inference."""
    model = student.to("cpu").eval()
    batch = sample.repeat(batch_size, *([1] * (sample.dim() - 1)))
    times = []
    with torch.inference_mode():
        model(batch)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(batch)
            times.append((time.perf_counter() - t0) / batch_size * 1000)
    return float(np.median(times))
